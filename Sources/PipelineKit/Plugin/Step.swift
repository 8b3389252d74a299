import Foundation
import Logging

/// What a step tells the runtime after handling a message. After an irreversible step (the
/// send) has succeeded, the outcome is `completed` whatever later steps answer: `finish`
/// ends the run, and `requeue` or `wait`, which would send the message again, are refused.
public enum StepOutcome: Sendable, Equatable {
    /// Go on with the next step.
    case next
    /// Stop here and acknowledge: the message needs no further work. `label` says why in metrics,
    /// events and pipeline tests (`.duplicate`: it was sent already; a plugin's own, e.g. `suppressed`).
    case finish(as: OutcomeLabel, String)
    /// Stop here and try the message again later without using up an attempt
    /// (nil: after the first backoff delay).
    case requeue(after: Duration?, reason: String)
    /// Not now: run this step again at `Wait.until`, without using up an attempt. The runtime
    /// parks the message in memory (or, for long waits, sends it round the source again).
    case wait(Wait)
    /// Stop here: the message was sent already, by an earlier attempt of its own whose outcome
    /// was in doubt and is now settled (e.g. by a delivery status). It ends as sent (`completed`).
    case alreadySent(String)
}

/// "Not now, for this key, until then": a message waiting for its turn.
public struct Wait: Sendable, Equatable {
    /// What the message waits for (a sender's pace, a sender–recipient pair): waits are counted and fair by key.
    public var key: String
    public var until: Date
    public var reason: WaitReason

    public init(key: String, until: Date, reason: WaitReason) {
        self.key = key
        self.until = until
        self.reason = reason
    }
}

/// Why a message waits, for metrics (`outbound_messages_waiting{reason}`) and pipeline tests.
public struct WaitReason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Its sender's send rate.
    public static let throughput = WaitReason(rawValue: "throughput")
    /// A hold on the sender–recipient pair after the receiving side limited it.
    public static let pairHold = WaitReason(rawValue: "pair_hold")
    /// Its sender is paused after a sender-side failure.
    public static let paused = WaitReason(rawValue: "paused")
    /// Its send is in doubt (the answer was lost): waiting for a status to settle it, or for the window to end.
    public static let inDoubt = WaitReason(rawValue: "in_doubt")

    /// The reasons the runtime reports from the start (`outbound_messages_waiting{reason}` at 0).
    public static let known: [WaitReason] = [.throughput, .pairHold, .paused, .inDoubt]

    public var description: String { rawValue }
}

/// A step failed; the runtime applies the step's `on_error` or `degradation` policy.
public struct StepFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The message itself is wrong (schema, JSON): retrying cannot help.
        case invalid
        /// May succeed later (timeouts, 5xx).
        case transient
        /// Will never succeed for this message.
        case permanent
        /// Not the message's fault: the sender's credentials or account (token expired, …).
        /// The message waits without using an attempt, and its `pauseScope` is paused.
        case senderSide = "sender_side"
        /// The step's resource is down or too slow: the `degradation` policy applies.
        case unavailable
        /// An irreversible step may have taken effect though it failed (its request was written and
        /// the answer lost): what the steps before it claimed is kept, never given back — a release
        /// would let the message be sent again — and the message waits without using an attempt.
        case inDoubt = "in_doubt"
    }

    public var kind: Kind
    public var reason: String
    /// The least wait before trying again, when the failure says.
    public var retryAfter: Duration?
    /// The error code of the system that refused, when it gave one (dead letters carry it as `x-error-code`).
    public var code: Int?
    /// For sender-side failures: what is paused (e.g. one sender's token).
    public var pauseScope: PauseScope?
    /// A code that is not a number (`in_doubt`), for outcome events when `code` is nil.
    public var symbolicCode: String?

    public init(_ kind: Kind, _ reason: String, retryAfter: Duration? = nil, code: Int? = nil, pauseScope: PauseScope? = nil, symbolicCode: String? = nil) {
        self.kind = kind
        self.reason = reason
        self.retryAfter = retryAfter
        self.code = code
        self.pauseScope = pauseScope
        self.symbolicCode = symbolicCode
    }

    public var description: String { "\(kind.rawValue): \(reason)" }
}

/// What a sender-side failure pauses.
public struct PauseScope: Sendable, Hashable {
    /// The hold key steps check before they act (`FlowControl.holds`).
    public var key: String
    /// Whether every message of the pipeline is concerned: the source then stops consuming meanwhile.
    public var coversAll: Bool
    /// A short, fixed label for why (`token_rejected`, …): the `reason` of `outbound_consumption_paused`.
    public var cause: String

    public init(key: String, coversAll: Bool, cause: String = "sender_side") {
        self.key = key
        self.coversAll = coversAll
        self.cause = cause
    }

    /// The same scope, paused for `cause`.
    public func because(_ cause: String) -> PauseScope {
        PauseScope(key: key, coversAll: coversAll, cause: cause)
    }
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
    /// Pacing, holds and pauses shared by every message of this worker.
    public var flow: FlowControl
    /// What the pipeline's irreversible step says to do with a send in doubt (`Step.inDoubtPolicy`).
    public var inDoubt: InDoubtPolicy

    public init(stepName: String, logger: Logger, workerID: String, clock: any WallClock, flow: FlowControl, inDoubt: InDoubtPolicy = .standard) {
        self.stepName = stepName
        self.logger = logger
        self.workerID = workerID
        self.clock = clock
        self.flow = flow
        self.inDoubt = inDoubt
    }
}

/// One step of a pipeline, built by a `StepPlugin` from its settings.
///
/// A step reads the message, may leave typed values for later steps, and answers with an
/// outcome or throws a `StepFailure`; the runtime turns that into an ack, a retry or a dead letter:
///
/// ```swift
/// struct RequireRecipient: Step {
///     func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
///         guard message.field("to") != nil else { throw StepFailure(.invalid, "to: required") }
///         return .next
///     }
/// }
/// ```
///
/// The rules every step lives by:
/// - **Concurrency**: one instance serves up to `concurrency` messages at once, from any thread.
///   Keep per-message state in `message.values` (typed keys, `MessageValueKey`), never in the step.
/// - **Re-entry**: after `.wait`, and after an in-doubt hold, `run` is called again for the same
///   message (its values as this run left them): do not count or claim twice.
/// - **Undo**: when the message will not go on now (a later step failed, the outcome event was
///   refused, the wait went round the queue), `undo` is called: give back exactly what this run took.
/// - **Cancellation** (shutdown, drain timeout) reaches a step only before the pipeline's
///   irreversible step has started; that step and the ones after it always finish.
/// - **Failures** are `StepFailure`s: `.unavailable` for a store that is down (the step's
///   `degradation` decides), `.invalid`/`.permanent` to dead-letter, `.transient` to retry.
public protocol Step: Sendable {
    /// Handles the message: returns an outcome, or throws a `StepFailure`.
    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome

    /// Undoes what `run` claimed when the message will not go on now: a later step failed, or
    /// this step asked to wait and the wait was given up (e.g. releases an idempotency key,
    /// gives back a send slot). Default: nothing.
    func undo(_ message: Message, _ context: StepContext) async

    /// A later, irreversible step failed in doubt (its request written, the answer lost: it may
    /// have taken effect). Instead of `undo`, a step that holds the message's claim keeps it and
    /// records that the send is in doubt (e.g. the idempotency key becomes `in_doubt`), and returns
    /// true: the runtime then runs the message again from this step, which waits for evidence
    /// (`.wait` with `WaitReason.inDoubt`), ends it as sent (`.alreadySent`), lets it go on
    /// (resend) or fails it, as `context.inDoubt` says. Default: false (nothing held).
    func holdInDoubt(_ message: inout Message, _ context: StepContext) async -> Bool

    /// What to do with a send of this (irreversible) step that ends in doubt; nil: the standard policy.
    var inDoubtPolicy: InDoubtPolicy? { get }

    /// Called once the message's outcome is durable — reported, and its delivery acknowledged —
    /// for work that must not happen before (e.g. recording that a status was published: a crash
    /// before the event's confirm must leave it unrecorded, so it is published again). Runs for
    /// the steps that passed, in order; never for a message that goes back to the source. A crash
    /// between the acknowledgement and this call skips it: keep it to what may be lost. Default: nothing.
    func settled(_ message: Message, _ context: StepContext) async

    /// Fields the outcome report carries for every message valid enough to pass a step, unless a
    /// step reported its own (`Message.report`): e.g. the sender a message would have gone out
    /// with, for a duplicate that never reached the send. Default: none.
    var reportedDefaults: [String: JSONValue] { get }
}

extension Step {
    public func undo(_ message: Message, _ context: StepContext) async {}
    public func settled(_ message: Message, _ context: StepContext) async {}
    public func holdInDoubt(_ message: inout Message, _ context: StepContext) async -> Bool { false }
    public var inDoubtPolicy: InDoubtPolicy? { nil }
    public var reportedDefaults: [String: JSONValue] { [:] }
}
