/// Reads `messages[0].id`, the wamid, from a Cloud API success answer
/// (`{"messaging_product":"whatsapp","contacts":[…],"messages":[{"id":"wamid.…"}]}`) in one pass over
/// its bytes, without decoding the rest: no allocation but the wamid's `String`, where a `JSONDecoder`
/// would build a container per level. This runs once per message sent.
///
/// The answer must be one valid JSON object (whitespace around it allowed); the values it skips are
/// checked for syntax, not decoded. Anything else — not JSON, cut off, no `messages` array, a first
/// message without a string `id`, an empty id, a string that is not valid UTF-8 — reads as nil: sent,
/// wamid unknown (SPEC 13).
enum WamidReader {
    static func wamid(in body: UnsafeRawBufferPointer) -> String? {
        var scanner = Scanner(bytes: body)
        return scanner.answer()
    }
}

extension WamidReader {
    /// The key `messages`, and `id` inside its first element.
    private static let messagesKey: [UInt8] = Array("messages".utf8)
    private static let idKey: [UInt8] = Array("id".utf8)
    /// Deeper nesting than this is not a Cloud API answer (and must not exhaust the stack).
    private static let maxDepth = 64

    private struct Scanner {
        let bytes: UnsafeRawBufferPointer
        var index = 0

        init(bytes: UnsafeRawBufferPointer) {
            self.bytes = bytes
        }

        /// The whole answer: an object, its `messages[0].id` (nil when absent), and nothing after it.
        /// Any syntax error makes it nil.
        mutating func answer() -> String? {
            var wamid: String?
            let valid = members(depth: 1) { scanner, key in
                guard scanner.key(key, is: WamidReader.messagesKey) else { return scanner.skipValue(depth: 1) }
                let (ok, id) = scanner.messages()
                wamid = id
                return ok
            }
            guard valid, peek() == nil else { return nil }
            return wamid
        }

        /// The value of `messages`: when an array whose first element is an object, that object's `id`.
        mutating func messages() -> (valid: Bool, id: String?) {
            guard peek() == UInt8(ascii: "[") else { return (skipValue(depth: 2), nil) }
            index += 1
            if peek() == UInt8(ascii: "]") {
                index += 1
                return (true, nil)
            }
            var id: String?
            if peek() == UInt8(ascii: "{") {
                let valid = members(depth: 3) { scanner, key in
                    guard scanner.key(key, is: WamidReader.idKey), scanner.peek() == UInt8(ascii: "\"") else { return scanner.skipValue(depth: 3) }
                    let (ok, text) = scanner.string()
                    id = text?.isEmpty == false ? text : nil
                    return ok
                }
                guard valid else { return (false, nil) }
            } else {
                guard skipValue(depth: 2) else { return (false, nil) }
            }
            while true {
                switch peek() {
                case UInt8(ascii: ","):
                    index += 1
                    guard skipValue(depth: 2) else { return (false, nil) }
                case UInt8(ascii: "]"):
                    index += 1
                    return (true, id)
                default:
                    return (false, nil)
                }
            }
        }

        /// The raw content of a string (after its opening quote, before its closing one), and whether it has escapes.
        typealias Span = (range: Range<Int>, escaped: Bool)

        /// Walks the object at `index`: `member` gets each member's key and must consume its value
        /// (returning false on a syntax error).
        mutating func members(depth: Int, _ member: (inout Scanner, Span) -> Bool) -> Bool {
            guard depth <= WamidReader.maxDepth, peek() == UInt8(ascii: "{") else { return false }
            index += 1
            if peek() == UInt8(ascii: "}") {
                index += 1
                return true
            }
            while true {
                guard peek() == UInt8(ascii: "\""), let key = scanString() else { return false }
                guard peek() == UInt8(ascii: ":") else { return false }
                index += 1
                guard member(&self, key) else { return false }
                switch peek() {
                case UInt8(ascii: ","):
                    index += 1
                case UInt8(ascii: "}"):
                    index += 1
                    return true
                default:
                    return false
                }
            }
        }

        /// Whether the key `span` says `name` (escapes decoded).
        func key(_ span: Span, is name: [UInt8]) -> Bool {
            guard span.escaped else {
                return span.range.count == name.count && zip(span.range, name).allSatisfy { bytes[$0] == $1 }
            }
            return Scanner.unescape(bytes, span.range) == name
        }

        /// Skips one value of any kind, checking its syntax.
        mutating func skipValue(depth: Int) -> Bool {
            guard depth <= WamidReader.maxDepth, let byte = peek() else { return false }
            switch byte {
            case UInt8(ascii: "{"):
                return members(depth: depth + 1) { scanner, _ in scanner.skipValue(depth: depth + 1) }
            case UInt8(ascii: "["):
                index += 1
                if peek() == UInt8(ascii: "]") {
                    index += 1
                    return true
                }
                while true {
                    guard skipValue(depth: depth + 1) else { return false }
                    switch peek() {
                    case UInt8(ascii: ","):
                        index += 1
                    case UInt8(ascii: "]"):
                        index += 1
                        return true
                    default:
                        return false
                    }
                }
            case UInt8(ascii: "\""):
                return scanString() != nil
            case UInt8(ascii: "t"):
                return literal("true")
            case UInt8(ascii: "f"):
                return literal("false")
            case UInt8(ascii: "n"):
                return literal("null")
            default:
                return number()
            }
        }

        /// The string at `index`, decoded: valid false on a syntax error, value nil when it is not valid UTF-8.
        mutating func string() -> (valid: Bool, value: String?) {
            guard let span = scanString() else { return (false, nil) }
            guard span.escaped else {
                return (true, String(validating: UnsafeRawBufferPointer(rebasing: bytes[span.range]), as: UTF8.self))
            }
            guard let decoded = Scanner.unescape(bytes, span.range) else { return (true, nil) }
            return (true, String(validating: decoded, as: UTF8.self))
        }

        /// The raw content of the string at `index` (after its opening quote, before its closing one),
        /// and whether it has escapes; moves past it. Nil when it is not a valid JSON string.
        mutating func scanString() -> Span? {
            index += 1  // the opening quote
            let start = index
            var escaped = false
            while index < bytes.count {
                let byte = bytes[index]
                switch byte {
                case UInt8(ascii: "\""):
                    let range = start..<index
                    index += 1
                    return (range, escaped)
                case UInt8(ascii: "\\"):
                    escaped = true
                    guard index + 1 < bytes.count else { return nil }
                    switch bytes[index + 1] {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"), UInt8(ascii: "b"), UInt8(ascii: "f"),
                         UInt8(ascii: "n"), UInt8(ascii: "r"), UInt8(ascii: "t"):
                        index += 2
                    case UInt8(ascii: "u"):
                        guard index + 5 < bytes.count, Scanner.hex(bytes, index + 2) != nil else { return nil }
                        index += 6
                    default:
                        return nil
                    }
                case 0..<0x20:
                    return nil  // control characters must be escaped
                default:
                    index += 1
                }
            }
            return nil
        }

        mutating func literal(_ word: StaticString) -> Bool {
            let count = word.utf8CodeUnitCount
            guard index + count <= bytes.count else { return false }
            let matches = word.withUTF8Buffer { expected in
                (0..<count).allSatisfy { bytes[index + $0] == expected[$0] }
            }
            guard matches else { return false }
            index += count
            return true
        }

        /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`
        mutating func number() -> Bool {
            if byte(is: UInt8(ascii: "-")) { index += 1 }
            if byte(is: UInt8(ascii: "0")) {
                index += 1
            } else {
                guard digits() else { return false }
            }
            if byte(is: UInt8(ascii: ".")) {
                index += 1
                guard digits() else { return false }
            }
            if byte(is: UInt8(ascii: "e")) || byte(is: UInt8(ascii: "E")) {
                index += 1
                if byte(is: UInt8(ascii: "+")) || byte(is: UInt8(ascii: "-")) { index += 1 }
                guard digits() else { return false }
            }
            return true
        }

        /// One or more digits.
        private mutating func digits() -> Bool {
            let start = index
            while index < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[index]) { index += 1 }
            return index > start
        }

        private func byte(is expected: UInt8) -> Bool {
            index < bytes.count && bytes[index] == expected
        }

        /// The next byte that is not JSON whitespace (the index moves to it); nil at the end.
        mutating func peek() -> UInt8? {
            while index < bytes.count {
                switch bytes[index] {
                case UInt8(ascii: " "), UInt8(ascii: "\n"), UInt8(ascii: "\r"), UInt8(ascii: "\t"):
                    index += 1
                default:
                    return bytes[index]
                }
            }
            return nil
        }

        /// The UTF-8 bytes of a string content with escapes; nil for a lone surrogate.
        static func unescape(_ bytes: UnsafeRawBufferPointer, _ range: Range<Int>) -> [UInt8]? {
            var out: [UInt8] = []
            out.reserveCapacity(range.count)
            var index = range.lowerBound
            while index < range.upperBound {
                let byte = bytes[index]
                guard byte == UInt8(ascii: "\\") else {
                    out.append(byte)
                    index += 1
                    continue
                }
                let escape = bytes[index + 1]
                index += 2
                switch escape {
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    guard var scalar = hex(bytes, index) else { return nil }
                    index += 4
                    if (0xD800..<0xDC00).contains(scalar) {
                        // A high surrogate: a low one must follow.
                        guard index + 6 <= range.upperBound, bytes[index] == UInt8(ascii: "\\"), bytes[index + 1] == UInt8(ascii: "u"),
                              let low = hex(bytes, index + 2), (0xDC00..<0xE000).contains(low) else { return nil }
                        index += 6
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        return nil
                    }
                    guard let unicode = Unicode.Scalar(scalar) else { return nil }
                    out.append(contentsOf: UTF8.encode(unicode)!)
                default: out.append(escape)  // " \ /
                }
            }
            return out
        }

        /// The value of the 4 hex digits at `index`.
        static func hex(_ bytes: UnsafeRawBufferPointer, _ index: Int) -> UInt32? {
            guard index + 4 <= bytes.count else { return nil }
            var value: UInt32 = 0
            for offset in 0..<4 {
                let byte = bytes[index + offset]
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: return nil
                }
                value = value << 4 | UInt32(digit)
            }
            return value
        }
    }
}
