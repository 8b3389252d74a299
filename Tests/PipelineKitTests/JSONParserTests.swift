import Foundation
import PipelineKit
import Testing
import TestSupport

/// `JSONValue(parsing:)` against Foundation's `JSONSerialization`, which it replaced: every
/// document one accepts the other reads to the same value, every document one refuses the other
/// refuses, and an error says what and where.
@Suite struct JSONParserTests {
    @Test("documents read as JSONSerialization reads them", arguments: [
        #"{"internalId":"m-1","to":"+55 11 98765-4321","type":"text","text":{"body":"Your order has shipped"}}"#,
        #"  [ 1 , -2 , 0 , -0 , 9007199254740993 , 18446744073709551615 , -9223372036854775808 ]  "#,
        "123456789012345678901234567890", "-123456789012345678901234567890",
        #"[1.5, -0.0, 1e2, 1E-2, 2.50, 0.1, 1e300, 123.456e-7, 9007199254740993.0]"#,
        #"["\"\\\/\b\f\n\r\t", "\u00e9\u4e2d\uD83D\uDE00", "\u0000x", "é 中 😀", ""]"#,
        #"{"a":{"b":[{"c":null},true,false,[]]},"":{},"k":"v"}"#,
        "\t\r\n{\n\"spaced\" :\r\n [ ] }\n", "null", "true", "\"just text\"", "0",
        "\u{FEFF}{\"bom\":1}",
        #"["é\nx", "中\u0041"]"#,
    ])
    func readsAsJSONSerialization(_ document: String) throws {
        let bytes = Array(document.utf8)
        let expected = try Self.foundationValue(bytes)
        let actual = try JSONValue(parsing: bytes)
        #expect(Self.equivalent(actual, expected), "\(actual) against \(expected)")
    }

    @Test("numbers keep their text as written; JSONSerialization's went through a double")
    func numbersAsWritten() throws {
        let numbers = ["1.50", "-0", "-0.0", "1E2", "1e-7", "9007199254740993.0", "9007199254740993", "123456789012345678901234567890"]
        let parsed = try JSONValue(parsing: Array("[\(numbers.joined(separator: ","))]".utf8))
        #expect(parsed == .array(numbers.map { .number(JSONNumber(text: $0)) }))
    }

    @Test("generated documents, compact and spaced, read as JSONSerialization reads them")
    func generatedDocuments() throws {
        var generator = SeededGenerator(seed: 2026)
        for round in 0..<2000 {
            let value = Self.randomValue(depth: 0, using: &generator)
            let compact = value.encodedBytes()
            let spaced = Self.spaced(compact, using: &generator)
            for bytes in [compact, spaced] {
                let expected = try #require(try? Self.foundationValue(bytes), "round \(round): JSONSerialization refuses \(String(decoding: bytes, as: UTF8.self))")
                let actual = try JSONValue(parsing: bytes)
                #expect(Self.equivalent(actual, expected), "round \(round): \(String(decoding: bytes, as: UTF8.self))")
            }
        }
    }

    @Test("damaged documents: what this parser accepts, JSONSerialization accepts as the same value")
    func damagedDocuments() throws {
        var generator = SeededGenerator(seed: 77)
        let alphabet = Array(#"{}[]:,"\/ tfnrue0123456789.-+Eé"#.utf8) + [0x00, 0x1F, 0x80, 0xC3, 0xFF]
        var accepted = 0
        for round in 0..<3000 {
            var bytes = Self.randomValue(depth: 0, using: &generator).encodedBytes()
            for _ in 0..<Int.random(in: 1...3, using: &generator) {
                let place = Int.random(in: 0...bytes.count, using: &generator)
                let byte = alphabet.randomElement(using: &generator) ?? 0
                switch Int.random(in: 0..<3, using: &generator) {
                case 0 where place < bytes.count: bytes[place] = byte
                case 1 where place < bytes.count: bytes.remove(at: place)
                default: bytes.insert(byte, at: place)
                }
            }
            let text = String(decoding: bytes, as: UTF8.self)
            let reference = try? Self.foundationValue(bytes)
            switch Result(catching: { () throws(JSONValue.ParseError) in try JSONValue(parsing: bytes) }) {
            case .success(let value):
                accepted += 1
                let expected = try #require(reference, "round \(round): accepted what JSONSerialization refuses: \(text)")
                #expect(Self.equivalent(value, expected), "round \(round): \(text)")
            case .failure where reference != nil && bytes.prefix(4).contains(0):
                continue  // JSONSerialization took the NUL bytes for UTF-16 or UTF-32 text; a body is UTF-8 (SPEC 4)
            case .failure(let error) where reference != nil:
                // Refused where JSONSerialization accepts: only where RFC 8259 asks for it.
                let allowed = ["unexpected '}' where a member name in quotes should be", "unexpected ']' where a value should be", "not UTF-8", "lone surrogate"]
                #expect(allowed.contains { error.description.contains($0) }, "round \(round): \(error) for \(text)")
            case .failure:
                continue
            }
        }
        #expect(accepted > 100, "too few damaged documents stayed JSON to compare: \(accepted)")
    }

    @Test("a member named twice keeps its last value, as JSONSerialization's does")
    func repeatedMember() throws {
        let bytes = Array(#"{"a":1,"b":2,"a":3}"#.utf8)
        #expect(try JSONValue(parsing: bytes) == Self.foundationValue(bytes))
        #expect(try JSONValue(parsing: bytes)["a"] == .number(3))
    }

    @Test("refused, and the error says what and where", arguments: [
        ("", "the text ends where a value should be at offset 0"),
        ("   ", "the text ends where a value should be at offset 3"),
        ("[1 2]", "unexpected '2' where ',' or ']' should be at offset 3"),
        (#"{"a" 1}"#, "unexpected '1' where ':' should follow a member name at offset 5"),
        (#"{"a":1"#, "the text ends where ',' or '}' should be at offset 6"),
        ("{1:2}", "unexpected '1' where a member name in quotes should be at offset 1"),
        ("1 2", "unexpected '2' after the value at offset 2"),
        ("01", "a number with a leading zero at offset 0"),
        ("-", "the text ends where the digits of a number should be at offset 1"),
        ("-a", "unexpected 'a' where the digits of a number should be at offset 1"),
        ("1.", "the text ends where the digits after a decimal point should be at offset 2"),
        (".5", "unexpected '.' where a value should be at offset 0"),
        ("1e+", "the text ends where the digits of an exponent should be at offset 3"),
        ("1e999", "a number too large for a double at offset 0"),
        ("tru", "unexpected 't' where a value should be at offset 0"),
        ("nulls", "unexpected 's' after the value at offset 4"),
        (#""abc"#, "a string that never ends at offset 0"),
        ("\"a\u{1}b\"", "a control character (0x1) in a string, not escaped at offset 2"),
        (#"["\q"]"#, #"an unknown escape '\' followed by 'q' at offset 2"#),
        ("[\"\\\n\"]", #"an unknown escape '\' followed by byte 0xA at offset 2"#),
        ("-01", "a number with a leading zero at offset 0"),
        ("1.0e+", "the text ends where the digits of an exponent should be at offset 5"),
        ("\u{FEFF}", "the text ends where a value should be at offset 3"),
        (#""\u12G4""#, #"a \u escape without four hex digits at offset 1"#),
        (#""\u12"#, #"a \u escape without four hex digits at offset 1"#),
        (#"'single'"#, "unexpected ''' where a value should be at offset 0"),
        ("{\"a\":\u{7}}", "unexpected byte 0x7 where a value should be at offset 5"),
    ])
    func refused(_ document: String, _ error: String) {
        let bytes = Array(document.utf8)
        #expect(throws: (any Error).self, "JSONSerialization accepts \(document)") { try Self.foundationValue(bytes) }
        #expect(Self.parseError(bytes) == error)
    }

    @Test("stricter than JSONSerialization where RFC 8259 asks: trailing commas, text that is not UTF-8, lone surrogates")
    func stricterThanJSONSerialization() {
        let cases: [([UInt8], String)] = [
            (Array(#"{"a":1,}"#.utf8), "unexpected '}' where a member name in quotes should be at offset 7"),
            (Array("[1,]".utf8), "unexpected ']' where a value should be at offset 3"),
            ([0x22, 0x61, 0xFF, 0x22], "a string that is not UTF-8 at offset 0"),
            ([0x5B, 0x22, 0xC3, 0x22, 0x5D], "a string that is not UTF-8 at offset 1"),
            (Array(#"["\n\u00e9", "x"#.utf8) + [0xC3] + Array(#""]"#.utf8), "a string that is not UTF-8 at offset 13"),
            (Array(#""\n"#.utf8) + [0xFF, 0x22], "a string that is not UTF-8 at offset 0"),
            (Array(#""\uD800""#.utf8), #"a \u escape of a lone surrogate at offset 1"#),
            (Array(#""\uDC00""#.utf8), #"a \u escape of a lone surrogate at offset 1"#),
            (Array(#""\uD83Dx""#.utf8), #"a \u escape of a lone surrogate at offset 1"#),
            (Array(#""\uD83D\u0041""#.utf8), #"a \u escape of a lone surrogate at offset 1"#),
            (Array(#""\uD83D\uD83D""#.utf8), #"a \u escape of a lone surrogate at offset 1"#),
        ]
        for (bytes, error) in cases {
            #expect(Self.parseError(bytes) == error)
        }
    }

    @Test("nesting beyond the parser's own limit is refused without exhausting the stack")
    func deepNesting() throws {
        let deep = Array(String(repeating: "[", count: 100_000).utf8)
        #expect(Self.parseError(deep) == "objects and arrays nest deeper than 512 levels at offset 512")
        let allowed = Array((String(repeating: "[", count: 512) + String(repeating: "]", count: 512)).utf8)
        let nested = (1..<512).reduce(JSONValue.array([])) { inner, _ in .array([inner]) }
        #expect(try JSONValue(parsing: allowed) == nested)
    }

    /// What `JSONValue(parsing:)` says of `bytes`, or nil when it reads them.
    private static func parseError(_ bytes: [UInt8]) -> String? {
        do {
            _ = try JSONValue(parsing: bytes)
            return nil
        } catch {
            return error.description
        }
    }

    /// Equal, but for the form of numbers, compared by value (JSONSerialization's went through a
    /// double, where this parser keeps the text): `firstDifference` finds none either way.
    static func equivalent(_ actual: JSONValue, _ expected: JSONValue) -> Bool {
        actual.firstDifference(from: expected) == nil && expected.firstDifference(from: actual) == nil
    }

    // MARK: The reference: JSONSerialization's objects, converted as the worker converted them before

    static func foundationValue(_ bytes: [UInt8]) throws -> JSONValue {
        convert(try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed]))
    }

    private static func convert(_ object: Any) -> JSONValue {
        switch object {
        case let text as String:
            return .string(text)
        case let members as [String: Any]:
            return .object(members.mapValues(convert))
        case let items as [Any]:
            return .array(items.map(convert))
        case let decimal as NSDecimalNumber:
            return .number(JSONNumber(text: decimal.stringValue))
        case let number as NSNumber:
            switch UInt8(bitPattern: number.objCType.pointee) {
            case UInt8(ascii: "c"): return .bool(number.boolValue)
            case UInt8(ascii: "q"), UInt8(ascii: "Q"), UInt8(ascii: "i"), UInt8(ascii: "l"): return .number(JSONNumber(text: number.stringValue))
            default: return .number(JSONNumber(number.doubleValue))
            }
        default:
            return .null
        }
    }

    // MARK: Generated documents

    private static let pieces = ["a", "é", "中", "😀", "\"", "\\", "/", "\n", "\t", "\u{1}", "\u{7F}", " ", "0", "key"]

    private static func randomValue(depth: Int, using generator: inout SeededGenerator) -> JSONValue {
        switch Int.random(in: 0..<(depth > 4 ? 4 : 6), using: &generator) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2:
            switch Int.random(in: 0..<4, using: &generator) {
            case 0: return .number(JSONNumber(Int.random(in: .min ... .max, using: &generator) >> Int.random(in: 0..<64, using: &generator)))
            case 1: return .number(JSONNumber(text: String(Int.random(in: 1...9, using: &generator)) + String(repeating: "7", count: Int.random(in: 0..<30, using: &generator))))
            case 2: return .number(JSONNumber(Double(bitPattern: UInt64.random(in: 0...0x7FEF_FFFF_FFFF_FFFF, using: &generator)) * (Bool.random(using: &generator) ? 1 : -1)))
            default: return .number(JSONNumber(Double(Int.random(in: 0..<100_000, using: &generator)) / 64))
            }
        case 3: return .string(randomString(using: &generator))
        case 4: return .array((0..<Int.random(in: 0..<5, using: &generator)).map { _ in randomValue(depth: depth + 1, using: &generator) })
        default:
            var members: [String: JSONValue] = [:]
            for _ in 0..<Int.random(in: 0..<5, using: &generator) { members[randomString(using: &generator)] = randomValue(depth: depth + 1, using: &generator) }
            return .object(members)
        }
    }

    private static func randomString(using generator: inout SeededGenerator) -> String {
        (0..<Int.random(in: 0..<8, using: &generator)).map { _ in pieces.randomElement(using: &generator) ?? "" }.joined()
    }

    /// The same document with whitespace around its structural characters (outside strings).
    private static func spaced(_ compact: [UInt8], using generator: inout SeededGenerator) -> [UInt8] {
        let whitespace: [UInt8] = [0x20, 0x09, 0x0A, 0x0D]
        var output: [UInt8] = []
        var inString = false
        var escaped = false
        for byte in compact {
            let structural = !inString && "{}[]:,".utf8.contains(byte)
            if structural, Bool.random(using: &generator) { output.append(whitespace.randomElement(using: &generator) ?? 0x20) }
            output.append(byte)
            if structural, Bool.random(using: &generator) { output.append(whitespace.randomElement(using: &generator) ?? 0x20) }
            if inString {
                if escaped { escaped = false } else if byte == UInt8(ascii: "\\") { escaped = true } else if byte == UInt8(ascii: "\"") { inString = false }
            } else if byte == UInt8(ascii: "\"") {
                inString = true
            }
        }
        return output
    }
}
