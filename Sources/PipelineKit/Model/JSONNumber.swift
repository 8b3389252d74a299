/// A JSON number that keeps its value exactly: read from JSON, its text as written (an id beyond
/// 2^53 stays that id, `2.50` stays `2.50`); made from a `Double`, the shortest text of it.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral {
    /// The number as JSON text.
    public let text: String

    /// A number given by its JSON text (not checked: callers pass what a JSON parser accepted).
    public init(text: String) {
        self.text = text
    }

    public init(_ value: Int) {
        text = String(value)
    }

    /// A double: integral values below 10^15 without a fraction (`3`, not `3.0`); not-finite values as `null`'s stand-in `0`.
    public init(_ value: Double) {
        if value.rounded() == value, abs(value) < 1e15 {
            text = String(Int64(value))
        } else if value.isFinite {
            text = value.description
        } else {
            text = "0"
        }
    }

    public init(integerLiteral value: Int) { self.init(value) }
    public init(floatLiteral value: Double) { self.init(value) }

    /// The value as a double (as near as a double gets).
    public var double: Double { Double(text) ?? .nan }

    /// Whether `other` is the same number however written: integers digit for digit (an id beyond
    /// 2^53 too), other numbers as doubles (`2.50` and `2.5`, `1e2` and `100`).
    public func isSameValue(as other: JSONNumber) -> Bool {
        if text == other.text { return true }
        if isInteger, other.isInteger { return Self.withoutNegativeZero(text) == Self.withoutNegativeZero(other.text) }
        return double == other.double
    }

    /// Written without a fraction or an exponent.
    private var isInteger: Bool { !text.utf8.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") || $0 == UInt8(ascii: "E") } }

    private static func withoutNegativeZero(_ text: String) -> String { text == "-0" ? "0" : text }

    public var description: String { text }
}
