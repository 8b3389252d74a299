extension JSONValue {
    /// Why bytes are not JSON.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let description: String
        /// The text nests objects and arrays deeper than the parse allowed.
        public let isNestedTooDeep: Bool
        /// The text holds more values than the parse allowed.
        public let hasTooManyValues: Bool

        init(description: String, isNestedTooDeep: Bool = false, hasTooManyValues: Bool = false) {
            self.description = description
            self.isNestedTooDeep = isNestedTooDeep
            self.hasTooManyValues = hasTooManyValues
        }
    }

    /// The deepest nesting of objects and arrays any parse accepts: no input exhausts the stack.
    public static let deepestNesting = 512

    /// Parses JSON text (any value at the top level); see `JSONParser` for what it accepts.
    /// Objects and arrays nested deeper than `nestingLimit` (at most `deepestNesting`) are refused,
    /// and texts of more than `valueLimit` values (every object, array, string, number, `true`,
    /// `false` and `null` counts one).
    public init(parsing bytes: [UInt8], nestingLimit: Int = deepestNesting, valueLimit: Int = .max) throws(ParseError) {
        self = try bytes.withUnsafeBytes { raw in
            Result { () throws(ParseError) in try JSONValue(parsing: raw, nestingLimit: nestingLimit, valueLimit: valueLimit) }
        }.get()
    }

    /// Parses JSON text from raw memory (an HTTP answer's body as NIO holds it), without a copy.
    public init(parsing bytes: UnsafeRawBufferPointer, nestingLimit: Int = deepestNesting, valueLimit: Int = .max) throws(ParseError) {
        self = try bytes.withMemoryRebound(to: UInt8.self) { buffer in
            Result { () throws(ParseError) in try JSONParser.parse(buffer, nestingLimit: nestingLimit, valueLimit: valueLimit) }
        }.get()
    }
}
