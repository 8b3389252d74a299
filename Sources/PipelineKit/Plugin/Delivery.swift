import Foundation

/// One message as a source handed it out, until the runtime settles it.
public struct Delivery: Sendable {
    /// The body as delivered.
    public var body: [UInt8]
    /// Deliveries of this message that used an attempt before this one (0 on first delivery).
    public var attemptsMade: Int
    /// When the message first entered the system, if the source knows (`max_age` counts from it).
    public var firstSeen: Date?
    /// What steps noted on the message before it last went round the source (`Message.carried`).
    public var carried: [String: String]
    /// The lane it came from (nil: the source has no lanes).
    public var lane: Lane?
    /// The W3C trace context the source received with it (`traceparent`, `tracestate`; `TraceHeaders`),
    /// empty when none; a copy the source publishes in `settle` (a retry, a dead letter) carries
    /// these. When tracing is on and the message came without a context to continue, the runtime
    /// sets its own here before settling, so that the copy goes on in the trace it began.
    public var traceHeaders: [String: String]
    /// The source's own handle on the delivery, given back to it in `settle`.
    public var receipt: any Sendable

    /// The counts of attempts a source or store may report: what is read beyond them (a header set
    /// upstream, a value another service wrote) is taken as the nearest end, so counting on from it
    /// never overflows.
    public static let attemptsRange = 0...1_000_000

    /// `count` taken within `attemptsRange`.
    public static func attempts(clamping count: Int) -> Int {
        min(max(count, attemptsRange.lowerBound), attemptsRange.upperBound)
    }

    public init(body: [UInt8], attemptsMade: Int = 0, firstSeen: Date? = nil, carried: [String: String] = [:], lane: Lane? = nil, traceHeaders: [String: String] = [:], receipt: any Sendable) {
        self.traceHeaders = traceHeaders
        self.body = body
        self.lane = lane
        self.attemptsMade = attemptsMade
        self.firstSeen = firstSeen
        self.carried = carried
        self.receipt = receipt
    }
}
