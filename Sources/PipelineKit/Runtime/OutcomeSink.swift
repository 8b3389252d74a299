/// What became of one message: the decision and the message as the steps left it (its values
/// carry what they found: the request sent, the receipt) — for a sent message, as it stood
/// right after the send: its outcome is reported while the steps after the send still run.
public struct Outcome: Sendable {
    public var decision: Decision
    public var message: Message
    /// An irreversible step (the send) succeeded.
    public var sent: Bool
    /// The waits the message went through on this delivery, in order.
    public var waits: [Wait]

    public init(decision: Decision, message: Message, sent: Bool, waits: [Wait] = []) {
        self.decision = decision
        self.message = message
        self.sent = sent
        self.waits = waits
    }

    init(decision: Decision, run: PipelineRun) {
        self.init(decision: decision, message: run.message, sent: run.sent, waits: run.waits)
    }
}

/// Where outcomes are reported (outcome events) before the message is settled: when `record`
/// throws, the message is not acknowledged but goes back to the source.
///
/// ```swift
/// struct PrintingSink: OutcomeSink {
///     func record(_ outcome: Outcome) async throws { print(outcome.decision.outcomeName) }
/// }
/// ```
public protocol OutcomeSink: Sendable {
    /// Connects (declares what it publishes to); called once before the first outcome.
    func start() async throws
    /// Publishes what became of one message, before the message is settled. Throwing (the transport
    /// refused it) leaves the message unsettled: the runtime reports the outcome again with backoff,
    /// or hands the delivery back to a source that does not keep it.
    func record(_ outcome: Outcome) async throws
    /// Disconnects, after the last outcome.
    func shutdown() async
}

extension OutcomeSink {
    public func start() async throws {}
    public func shutdown() async {}
}
