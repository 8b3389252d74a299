import Foundation

/// Times as whole milliseconds since 1970: how they travel in message headers (`carried`) and in
/// store values (`paused:{ms}`, holds, limits).
///
/// ```swift
/// let stamp = until.epochMilliseconds(.up)                       // 1_765_000_000_123, never early
/// let back = Date(epochMillisecondsText: String(stamp))          // nil for text that is no such time
/// ```
extension Date {
    /// The milliseconds `epochMillisecondsText` reads: years 1970 to 9999 (what `UTCTimestamp` writes).
    public static let epochMillisecondsRange: ClosedRange<Double> = 0...253_402_300_799_999

    /// Milliseconds since 1970, rounded as `rule` says (down unless told); a date beyond what 64 bits
    /// hold gives the nearest end (no trap, whatever the date came from).
    public func epochMilliseconds(_ rule: FloatingPointRoundingRule = .down) -> Int64 {
        let milliseconds = (timeIntervalSince1970 * 1000).rounded(rule)
        if milliseconds.isNaN { return 0 }
        if milliseconds >= 9.2e18 { return .max }
        if milliseconds <= -9.2e18 { return .min }
        return Int64(milliseconds)
    }

    /// The date `milliseconds` after 1970.
    public init(epochMilliseconds milliseconds: Double) {
        self.init(timeIntervalSince1970: milliseconds / 1000)
    }

    /// The date `text` names in milliseconds since 1970 (what `epochMilliseconds` wrote); nil for
    /// anything else — not a number, `inf`, `nan`, before 1970, after 9999. Such text comes from
    /// input (a header, a store value): a time far out of range would trap where it is turned into
    /// a wait.
    public init?(epochMillisecondsText text: some StringProtocol) {
        guard let milliseconds = Double(text), Self.epochMillisecondsRange.contains(milliseconds) else { return nil }
        self.init(epochMilliseconds: milliseconds)
    }
}
