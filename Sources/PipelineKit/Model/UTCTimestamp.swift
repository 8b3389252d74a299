import Foundation

/// ISO 8601 UTC times with milliseconds, `2026-11-29T10:39:10.255Z`, as log lines and
/// idempotency keys carry them. Written digit by digit: `Date.formatted(.iso8601…)`
/// goes through a calendar and cost several microseconds a call.
public enum UTCTimestamp {
    /// The current time.
    public static func now() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return format(seconds: Int(now.tv_sec), milliseconds: Int(now.tv_nsec / 1_000_000))
    }

    /// The instants the format can write, in seconds since 1970: 0001-01-01T00:00:00.000Z to
    /// 9999-12-31T23:59:59.999Z (four digits of year).
    public static let range: ClosedRange<TimeInterval> = -62_135_596_800...253_402_300_799.999

    /// `date` as text; one outside `range` (or not a number) as the nearest end of it. Such dates
    /// come only from input — an AMQP timestamp, a webhook's — and must not stop the worker.
    public static func format(_ date: Date) -> String {
        let interval = date.timeIntervalSince1970
        let bounded = interval.isNaN ? 0 : min(max(interval, range.lowerBound), range.upperBound)
        let milliseconds = Int((bounded * 1000).rounded(.down))
        let (seconds, remainder) = milliseconds.quotientAndRemainder(dividingBy: 1000)
        return remainder < 0 ? format(seconds: seconds - 1, milliseconds: remainder + 1000) : format(seconds: seconds, milliseconds: remainder)
    }

    static func format(seconds: Int, milliseconds: Int) -> String {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        var bytes = Array("0000-00-00T00:00:00.000Z".utf8)
        func put(_ value: Int, at end: Int, digits: Int) {
            var value = value
            for position in stride(from: end, to: end - digits, by: -1) {
                bytes[position] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            }
        }
        put(Int(parts.tm_year) + 1900, at: 3, digits: 4)
        put(Int(parts.tm_mon) + 1, at: 6, digits: 2)
        put(Int(parts.tm_mday), at: 9, digits: 2)
        put(Int(parts.tm_hour), at: 12, digits: 2)
        put(Int(parts.tm_min), at: 15, digits: 2)
        put(Int(parts.tm_sec), at: 18, digits: 2)
        put(milliseconds, at: 22, digits: 3)
        return String(decoding: bytes, as: UTF8.self)
    }
}
