extension JSONValue {
    /// Why bytes are not JSON.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Parses JSON text (any value at the top level); see `JSONParser` for what it accepts.
    public init(parsing bytes: [UInt8]) throws(ParseError) {
        var result: Result<JSONValue, ParseError> = .success(.null)
        bytes.withUnsafeBufferPointer { buffer in
            result = Result { () throws(ParseError) in try JSONParser.parse(buffer) }
        }
        self = try result.get()
    }

    /// Parses JSON text from raw memory (an HTTP answer's body as NIO holds it), without a copy.
    public init(parsing bytes: UnsafeRawBufferPointer) throws(ParseError) {
        var result: Result<JSONValue, ParseError> = .success(.null)
        bytes.withMemoryRebound(to: UInt8.self) { buffer in
            result = Result { () throws(ParseError) in try JSONParser.parse(buffer) }
        }
        self = try result.get()
    }

    /// Why `bytes` nest objects and arrays deeper than `limit`, or nil: a scan that stops at
    /// the first level too deep, so a hostile body never reaches the parser.
    public static func nestingProblem(in bytes: [UInt8], limit: Int) -> String? {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > limit { return "body nests objects and arrays deeper than \(limit) levels" }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
            default:
                continue
            }
        }
        return nil
    }
}
