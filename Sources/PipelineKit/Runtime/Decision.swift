/// Where and why a message failed, as dead letters and outcome events report it.
public struct Failure: Sendable, Equatable {
    /// The step's `name`.
    public var step: String
    public var reason: String
    /// The error code of the system that refused the message, when it gave one.
    public var code: Int?
    /// The message was too old to be sent (`expiresAt`, `max_age`).
    public var expired: Bool
    /// A code that is not a number (`in_doubt`), reported when `code` is nil.
    public var symbolicCode: String?

    public init(step: String, reason: String, code: Int? = nil, expired: Bool = false, symbolicCode: String? = nil) {
        self.step = step
        self.reason = reason
        self.code = code
        self.expired = expired
        self.symbolicCode = symbolicCode
    }
}

/// What becomes of a message once the pipeline has handled it; the runtime carries it out.
public enum Decision: Sendable, Equatable {
    /// Why a message is acknowledged.
    public enum AckReason: Sendable, Equatable {
        /// Every step passed (sent and marked).
        case completed
        /// A step ended the message without sending it: `label` says why (`duplicate`, `suppressed`, …).
        case finished(step: String, label: OutcomeLabel, reason: String)
        /// A failure under `on_error: drop`.
        case dropped(Failure)
    }

    /// Acknowledge the message: its outcome is final.
    case ack(AckReason)
    /// Deliver again after `after`, as delivery number `attempt`.
    case retry(after: Duration, attempt: Int, Failure)
    /// Publish to the dead-letter queue with the step and reason.
    case deadLetter(Failure)
    /// Deliver again after `after` without using up an attempt; with `pause`, that scope is
    /// paused meanwhile (a sender-side failure).
    case requeue(after: Duration, step: String, reason: String, pause: PauseScope?)

    /// A one-word name for metrics and pipeline tests.
    public var outcomeName: String {
        switch self {
        case .ack(.completed): "completed"
        case .ack(.finished(_, let label, _)): label.rawValue
        case .ack(.dropped): "dropped"
        case .retry: "retry"
        case .deadLetter(let failure): failure.expired ? "expired" : "dead_letter"
        case .requeue: "requeue"
        }
    }

    /// A step ended the message without sending it (`.ack(.finished)`).
    public var isFinished: Bool {
        if case .ack(.finished) = self { true } else { false }
    }

    /// The runtime's own outcome names, for metrics made up front (steps add their labels: `StepPlugin.outcomes`).
    public static let outcomeNames = ["completed", "duplicate", "dropped", "retry", "dead_letter", "expired", "requeue"]

    /// The step that decided; nil when every step passed.
    public var stepName: String? {
        switch self {
        case .ack(.completed): nil
        case .ack(.finished(let step, _, _)): step
        case .ack(.dropped(let failure)), .retry(_, _, let failure), .deadLetter(let failure): failure.step
        case .requeue(_, let step, _, _): step
        }
    }

    /// The reason given, if any.
    public var reason: String? {
        switch self {
        case .ack(.completed): nil
        case .ack(.finished(_, _, let reason)), .requeue(_, _, let reason, _): reason
        case .ack(.dropped(let failure)), .retry(_, _, let failure), .deadLetter(let failure): failure.reason
        }
    }

    /// The failure, for outcomes that are one.
    public var failure: Failure? {
        switch self {
        case .ack(.dropped(let failure)), .retry(_, _, let failure), .deadLetter(let failure): failure
        case .ack(.completed), .ack(.finished), .requeue: nil
        }
    }
}
