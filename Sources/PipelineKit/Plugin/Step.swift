import Logging

/// What a step tells the runtime after handling a message.
public enum StepOutcome: Sendable, Equatable {
    /// Go on with the next step.
    case next
    /// Stop here and acknowledge: the message needs no further work (e.g. already sent).
    case finish(String)
    /// Stop here and try the message again later without using up an attempt
    /// (nil: after the first backoff delay).
    case requeue(after: Duration?, reason: String)
}

/// A step failed; the runtime applies the step's `on_error` or `degradation` policy.
public struct StepFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The message itself is wrong (schema, JSON): retrying cannot help.
        case invalid
        /// May succeed later (timeouts, 5xx, rate limits).
        case transient
        /// Will never succeed for this message.
        case permanent
        /// Not the message's fault: the sender's credentials or account (token expired, …).
        /// The message is retried and consumption paused.
        case senderSide = "sender_side"
        /// The step's resource is down or too slow: the `degradation` policy applies.
        case unavailable
    }

    public var kind: Kind
    public var reason: String
    /// The least wait before trying again, when the failure says (e.g. a pair rate limit).
    public var retryAfter: Duration?

    public init(_ kind: Kind, _ reason: String, retryAfter: Duration? = nil) {
        self.kind = kind
        self.reason = reason
        self.retryAfter = retryAfter
    }

    public var description: String { "\(kind.rawValue): \(reason)" }
}

/// What a step sees besides the message.
public struct StepContext: Sendable {
    /// The step's `name` in the pipeline.
    public var stepName: String
    /// The pipeline's logger; lines logged while a message is handled carry `internalId` and `step` (`MessageLogContext`).
    public var logger: Logger
    /// Identifies this worker process (idempotency key owners).
    public var workerID: String
    /// The wall clock (replaceable in pipeline tests).
    public var clock: any WallClock

    public init(stepName: String, logger: Logger, workerID: String, clock: any WallClock) {
        self.stepName = stepName
        self.logger = logger
        self.workerID = workerID
        self.clock = clock
    }
}

/// One step of a pipeline, built by a `StepPlugin` from its settings.
public protocol Step: Sendable {
    /// Handles the message: returns an outcome, or throws a `StepFailure`.
    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome

    /// Undoes what `run` claimed when a later step fails and the message will be tried
    /// again or dead-lettered (e.g. releases an idempotency key). Default: nothing.
    func undo(_ message: Message, _ context: StepContext) async
}

extension Step {
    public func undo(_ message: Message, _ context: StepContext) async {}
}
