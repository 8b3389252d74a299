/// Reads JSON text (RFC 8259, any value at the top level) straight into a `JSONValue`, in one pass
/// over the bytes.
///
/// Every message body goes through here. `JSONSerialization` did the same job through a copy of
/// the body and a tree of Foundation objects (`NSString`, `NSNumber`, dictionaries of `Any`) that
/// then had to be converted, which made the parse the largest single item of the worker's own work
/// per message (Benchmarks/HISTORY.md, "Where the time goes now").
///
/// It accepts what `JSONSerialization` accepted from UTF-8, except where RFC 8259 says otherwise:
/// text that is not UTF-8, `\u` escapes of lone surrogates and trailing commas (`[1,]`) are errors
/// here. A member named twice keeps its last value; a leading byte order mark is skipped. Numbers
/// keep their text exactly as written (SPEC 4: `2.50` reaches the Cloud API as `2.50`, an integer
/// beyond 2^53 as that integer); one too large for a double is refused. Errors say what was found
/// and at which offset (in bytes, from 0).
struct JSONParser {
    private let bytes: UnsafeBufferPointer<UInt8>
    /// Objects and arrays nested deeper than this are refused (`ParseError.isNestedTooDeep`).
    private let nestingLimit: Int
    /// Texts of more values than this are refused (`ParseError.hasTooManyValues`): a value takes
    /// tens of bytes in memory for as few as two of text (`[0,0,…]`).
    private let valueLimit: Int
    private var index = 0
    private var depth = 0
    private var values = 0

    static func parse(_ bytes: UnsafeBufferPointer<UInt8>, nestingLimit: Int, valueLimit: Int) throws(JSONValue.ParseError) -> JSONValue {
        var parser = JSONParser(bytes: bytes, nestingLimit: nestingLimit, valueLimit: valueLimit)
        return try parser.document()
    }

    private init(bytes: UnsafeBufferPointer<UInt8>, nestingLimit: Int, valueLimit: Int) {
        self.bytes = bytes
        self.nestingLimit = min(nestingLimit, JSONValue.deepestNesting)
        self.valueLimit = valueLimit
    }

    private mutating func document() throws(JSONValue.ParseError) -> JSONValue {
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { index = 3 }
        skipWhitespace()
        let value = try value()
        skipWhitespace()
        guard index == bytes.count else { throw unexpected("after the value") }
        return value
    }

    // MARK: Values

    private mutating func value() throws(JSONValue.ParseError) -> JSONValue {
        guard let byte = current else { throw failure("the text ends where a value should be") }
        values += 1
        guard values <= valueLimit else {
            throw JSONValue.ParseError(description: "more than \(valueLimit) values at offset \(index)", hasTooManyValues: true)
        }
        switch byte {
        case .openBrace: return try object()
        case .openBracket: return try array()
        case .quote: return .string(try string())
        case UInt8(ascii: "t"): try literal("true"); return .bool(true)
        case UInt8(ascii: "f"): try literal("false"); return .bool(false)
        case UInt8(ascii: "n"): try literal("null"); return .null
        case .minus, .zero...UInt8(ascii: "9"): return .number(try number())
        default: throw unexpected("where a value should be")
        }
    }

    private mutating func object() throws(JSONValue.ParseError) -> JSONValue {
        var members: [String: JSONValue] = [:]
        if try enterContainer(closedBy: .closeBrace) { return .object(members) }
        while true {
            guard current == .quote else { throw unexpected("where a member name in quotes should be") }
            let name = try string()
            skipWhitespace()
            guard current == .colon else { throw unexpected("where ':' should follow a member name") }
            index += 1
            skipWhitespace()
            members[name] = try value()
            if try endOfContainer(.closeBrace) { return .object(members) }
        }
    }

    private mutating func array() throws(JSONValue.ParseError) -> JSONValue {
        var items: [JSONValue] = []
        if try enterContainer(closedBy: .closeBracket) { return .array(items) }
        while true {
            items.append(try value())
            if try endOfContainer(.closeBracket) { return .array(items) }
        }
    }

    /// After a member or an item: steps over the `,` before the next one (false), or over `close`,
    /// leaving the container (true).
    private mutating func endOfContainer(_ close: UInt8) throws(JSONValue.ParseError) -> Bool {
        skipWhitespace()
        switch current {
        case .comma:
            index += 1
            skipWhitespace()
            return false
        case close:
            leaveContainer()
            return true
        default:
            throw unexpected("where ',' or '\(Character(Unicode.Scalar(close)))' should be")
        }
    }

    /// Steps over the `{` or `[` that opens a container, counting the depth; true when the
    /// container is empty (its `close` stepped over too).
    private mutating func enterContainer(closedBy close: UInt8) throws(JSONValue.ParseError) -> Bool {
        depth += 1
        guard depth <= nestingLimit else {
            throw JSONValue.ParseError(description: "objects and arrays nest deeper than \(nestingLimit) levels at offset \(index)", isNestedTooDeep: true)
        }
        index += 1
        skipWhitespace()
        guard current == close else { return false }
        leaveContainer()
        return true
    }

    private mutating func leaveContainer() {
        index += 1
        depth -= 1
    }

    private mutating func literal(_ word: StaticString) throws(JSONValue.ParseError) {
        let word = UnsafeBufferPointer(start: word.utf8Start, count: word.utf8CodeUnitCount)
        guard bytes.count - index >= word.count, UnsafeBufferPointer(rebasing: bytes[index..<index + word.count]).elementsEqual(word) else {
            throw unexpected("where a value should be")
        }
        index += word.count
    }

    // MARK: Strings

    /// A string from its opening quote; the common case, a string without escapes, is read in
    /// place without a copy of its bytes.
    private mutating func string() throws(JSONValue.ParseError) -> String {
        let opening = index
        index += 1
        let start = index
        var allASCII = true
        while index < bytes.count {
            let byte = bytes[index]
            if byte == .quote {
                let text = try text(UnsafeBufferPointer(rebasing: bytes[start..<index]), allASCII: allASCII, from: opening)
                index += 1
                return text
            }
            if byte == .backslash {
                return try escapedString(from: opening)
            }
            if byte < 0x20 { throw controlCharacter(byte) }
            allASCII = allASCII && byte < 0x80
            index += 1
        }
        throw failure("a string that never ends", at: opening)
    }

    /// The rest of a string that has escapes, into a buffer of its own.
    private mutating func escapedString(from opening: Int) throws(JSONValue.ParseError) -> String {
        var decoded = Array(UnsafeBufferPointer(rebasing: bytes[(opening + 1)..<index]))
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case .quote:
                index += 1
                return try decoded.withUnsafeBufferPointer { buffer throws(JSONValue.ParseError) in
                    try text(buffer, allASCII: false, from: opening)
                }
            case .backslash:
                try unescape(into: &decoded)
            case ..<0x20:
                throw controlCharacter(byte)
            default:
                decoded.append(byte)
                index += 1
            }
        }
        throw failure("a string that never ends", at: opening)
    }

    /// One escape sequence, from its backslash.
    private mutating func unescape(into decoded: inout [UInt8]) throws(JSONValue.ParseError) {
        let escape = index
        index += 1
        guard let letter = current else { throw failure("a string that never ends", at: escape) }
        index += 1
        switch letter {
        case .quote, .backslash, UInt8(ascii: "/"): decoded.append(letter)
        case UInt8(ascii: "b"): decoded.append(0x08)
        case UInt8(ascii: "f"): decoded.append(0x0C)
        case UInt8(ascii: "n"): decoded.append(0x0A)
        case UInt8(ascii: "r"): decoded.append(0x0D)
        case UInt8(ascii: "t"): decoded.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try hexQuad(escape: escape)
            if (0xD800..<0xDC00).contains(scalar) {
                // A high surrogate: the low one must follow as an escape of its own.
                guard bytes.count - index >= 2, bytes[index] == .backslash, bytes[index + 1] == UInt8(ascii: "u") else {
                    throw failure("a \\u escape of a lone surrogate", at: escape)
                }
                index += 2
                let low = try hexQuad(escape: escape)
                guard (0xDC00..<0xE000).contains(low) else { throw failure("a \\u escape of a lone surrogate", at: escape) }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00..<0xE000).contains(scalar) {
                throw failure("a \\u escape of a lone surrogate", at: escape)
            }
            guard let unicode = Unicode.Scalar(scalar) else { throw failure("a \\u escape that is not a character", at: escape) }
            decoded.append(contentsOf: unicode.utf8)
        default:
            throw failure("an unknown escape \(Self.shown(UInt8(ascii: "\\"))) followed by \(Self.shown(letter))", at: escape)
        }
    }

    /// The four hex digits of a `\u` escape.
    private mutating func hexQuad(escape: Int) throws(JSONValue.ParseError) -> UInt32 {
        guard bytes.count - index >= 4 else { throw failure("a \\u escape without four hex digits", at: escape) }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let digit: UInt32
            switch bytes[index] {
            case .zero...UInt8(ascii: "9"): digit = UInt32(bytes[index] - .zero)
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = UInt32(bytes[index] - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = UInt32(bytes[index] - UInt8(ascii: "A") + 10)
            default: throw failure("a \\u escape without four hex digits", at: escape)
            }
            value = value << 4 | digit
            index += 1
        }
        return value
    }

    private func text(_ utf8: UnsafeBufferPointer<UInt8>, allASCII: Bool, from opening: Int) throws(JSONValue.ParseError) -> String {
        if allASCII { return String(decoding: utf8, as: UTF8.self) }
        guard let text = String(validating: utf8, as: UTF8.self) else { throw failure("a string that is not UTF-8", at: opening) }
        return text
    }

    // MARK: Numbers

    /// A number as RFC 8259 writes it, its text kept as written.
    private mutating func number() throws(JSONValue.ParseError) -> JSONNumber {
        let start = index
        if current == .minus { index += 1 }
        guard let first = current, first.isDigit else { throw unexpected("where the digits of a number should be") }
        index += 1
        if first == .zero, let next = current, next.isDigit { throw failure("a number with a leading zero", at: start) }
        skipDigits()
        var integral = true
        if current == .dot {
            integral = false
            index += 1
            guard current?.isDigit == true else { throw unexpected("where the digits after a decimal point should be") }
            skipDigits()
        }
        if current == UInt8(ascii: "e") || current == UInt8(ascii: "E") {
            integral = false
            index += 1
            if current == .plus || current == .minus { index += 1 }
            guard current?.isDigit == true else { throw unexpected("where the digits of an exponent should be") }
            skipDigits()
        }
        let text = String(decoding: UnsafeBufferPointer(rebasing: bytes[start..<index]), as: UTF8.self)
        if !integral, Double(text)?.isFinite != true { throw failure("a number too large for a double", at: start) }
        return JSONNumber(text: text)
    }

    private mutating func skipDigits() {
        while let byte = current, byte.isDigit { index += 1 }
    }

    // MARK: Reading

    private var current: UInt8? { index < bytes.count ? bytes[index] : nil }

    private mutating func skipWhitespace() {
        while let byte = current, byte == .space || byte == .tab || byte == .lineFeed || byte == .carriageReturn { index += 1 }
    }

    private func unexpected(_ place: String) -> JSONValue.ParseError {
        guard let byte = current else { return failure("the text ends \(place)") }
        return failure("unexpected \(Self.shown(byte)) \(place)")
    }

    /// A byte for an error message: printable ASCII in quotes, anything else in hex.
    private static func shown(_ byte: UInt8) -> String {
        (0x21..<0x7F).contains(byte) ? "'\(Character(Unicode.Scalar(byte)))'" : "byte 0x\(String(byte, radix: 16, uppercase: true))"
    }

    private func controlCharacter(_ byte: UInt8) -> JSONValue.ParseError {
        failure("a control character (0x\(String(byte, radix: 16, uppercase: true))) in a string, not escaped")
    }

    private func failure(_ problem: String, at offset: Int? = nil) -> JSONValue.ParseError {
        JSONValue.ParseError(description: "\(problem) at offset \(offset ?? index)")
    }
}

private extension UInt8 {
    static let openBrace = UInt8(ascii: "{")
    static let closeBrace = UInt8(ascii: "}")
    static let openBracket = UInt8(ascii: "[")
    static let closeBracket = UInt8(ascii: "]")
    static let quote = UInt8(ascii: "\"")
    static let backslash = UInt8(ascii: "\\")
    static let colon = UInt8(ascii: ":")
    static let comma = UInt8(ascii: ",")
    static let minus = UInt8(ascii: "-")
    static let plus = UInt8(ascii: "+")
    static let dot = UInt8(ascii: ".")
    static let zero = UInt8(ascii: "0")
    static let space = UInt8(ascii: " ")
    static let tab = UInt8(ascii: "\t")
    static let lineFeed = UInt8(ascii: "\n")
    static let carriageReturn = UInt8(ascii: "\r")

    var isDigit: Bool { self >= .zero && self <= UInt8(ascii: "9") }
}
