/// Durations in pipeline files: a number of seconds (`30`, `0.5`) or a number with a unit (`250ms`, `30s`, `5m`, `24h`),
/// at most `longest`.
public enum DurationParser {
    /// The longest duration a pipeline may set (100 years, in milliseconds): TTLs, leases and waits
    /// beyond it mean nothing, and far beyond it (`1e17`) they would overflow where they are added up.
    public static let longest: Double = 3_155_760_000_000

    /// Parses `text`; nil when it is not a duration, or one longer than `longest`.
    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingWhitespace()
        let units: [(suffix: String, milliseconds: Double)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        for unit in units where trimmed.hasSuffix(unit.suffix) {
            let number = trimmed.dropLast(unit.suffix.count)
            if unit.suffix == "s", number.hasSuffix("m") { continue }
            guard let value = Double(number) else { return nil }
            return milliseconds(value * unit.milliseconds)
        }
        return Double(trimmed).flatMap { milliseconds($0 * 1000) }
    }

    private static func milliseconds(_ value: Double) -> Duration? {
        (0...longest).contains(value) ? .milliseconds(Int64(value.rounded())) : nil
    }

    /// The shortest exact spelling of a duration: `250ms`, `30s`, `2m`, `24h`.
    public static func format(_ duration: Duration) -> String {
        let milliseconds = duration.milliseconds
        if milliseconds == 0 { return "0s" }
        if milliseconds % 3_600_000 == 0 { return "\(milliseconds / 3_600_000)h" }
        if milliseconds % 60_000 == 0 { return "\(milliseconds / 60_000)m" }
        if milliseconds % 1000 == 0 { return "\(milliseconds / 1000)s" }
        return "\(milliseconds)ms"
    }
}

extension Duration {
    /// Whole milliseconds, rounded toward zero.
    public var milliseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1000 + attoseconds / 1_000_000_000_000_000
    }

    /// The duration in seconds as a floating-point number.
    public var secondsDouble: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) + Double(attoseconds) / 1e18
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces, tabs and newlines.
    func trimmingWhitespace() -> String {
        let isSpace: (Character) -> Bool = { $0 == " " || $0 == "\t" || $0 == "\n" || $0 == "\r" }
        guard let first = firstIndex(where: { !isSpace($0) }), let last = lastIndex(where: { !isSpace($0) }) else { return "" }
        return String(self[first...last])
    }
}
