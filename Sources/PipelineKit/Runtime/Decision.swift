/// What becomes of a message once the pipeline has handled it; the source carries it out.
public enum Decision: Sendable, Equatable {
    /// Why a message is acknowledged.
    public enum AckReason: Sendable, Equatable {
        /// Every step passed (sent and marked).
        case completed
        /// A step found the work already done (e.g. a duplicate).
        case finished(step: String, reason: String)
        /// A failure under `on_error: drop`.
        case dropped(step: String, reason: String)
    }

    /// Acknowledge the message: its outcome is final.
    case ack(AckReason)
    /// Deliver again after `after`, as delivery number `attempt`.
    case retry(after: Duration, attempt: Int, step: String, reason: String)
    /// Publish to the dead-letter queue with the step and reason.
    case deadLetter(step: String, reason: String)
    /// Deliver again after `after` without using up an attempt; with `pauseSource`,
    /// the source also stops consuming for a while (a sender-side failure).
    case requeue(after: Duration, step: String, reason: String, pauseSource: Bool)

    /// A one-word name for metrics and pipeline tests.
    public var outcomeName: String {
        switch self {
        case .ack(.completed): "completed"
        case .ack(.finished): "duplicate"
        case .ack(.dropped): "dropped"
        case .retry: "retry"
        case .deadLetter: "dead_letter"
        case .requeue: "requeue"
        }
    }

    /// The step that decided; nil when every step passed.
    public var stepName: String? {
        switch self {
        case .ack(.completed): nil
        case .ack(.finished(let step, _)), .ack(.dropped(let step, _)): step
        case .retry(_, _, let step, _), .deadLetter(let step, _), .requeue(_, let step, _, _): step
        }
    }

    /// The reason given, if any.
    public var reason: String? {
        switch self {
        case .ack(.completed): nil
        case .ack(.finished(_, let reason)), .ack(.dropped(_, let reason)): reason
        case .retry(_, _, _, let reason), .deadLetter(_, let reason), .requeue(_, _, let reason, _): reason
        }
    }
}
