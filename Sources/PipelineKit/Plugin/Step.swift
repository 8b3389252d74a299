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
    /// (resend) or fails it, as `context.inDoubt` says. A step skipped under `fail_open` (it could
    /// not claim) is asked too, and holds the message when it can record the doubt without a claim
    /// or must wait until it can. Default: false (nothing held).
    func holdInDoubt(_ message: inout Message, _ context: StepContext) async -> Bool

    /// What to do with a send of this (irreversible) step that ends in doubt; nil: the standard policy.
    var inDoubtPolicy: InDoubtPolicy? { get }

    /// Called once the message's outcome is durable — reported, and its delivery acknowledged —
    /// for work that must not happen before (e.g. recording that a status was published: a crash
    /// before the event's confirm must leave it unrecorded, so it is published again). Runs for
    /// the steps that passed, in order; never for a message that goes back to the source. A crash
    /// between the acknowledgement and this call skips it: keep it to what may be lost. Default: nothing.
    func settled(_ message: Message, _ context: StepContext) async

    /// How long after `run` starts the irreversible step may still start with what `run` took
    /// being this message's alone — an idempotency claim: its lease (after which another worker may
    /// take the message over) less the send's timeout; nil (default): as long as the run lasts.
    /// The runtime keeps a message that waits after this step in memory only while its wait ends
    /// within it, less a margin for the steps between the wait and the send (a quarter, at most
    /// 1 s); a longer wait, or waits that add up past it, go round the source, and `undo` gives
    /// back what `run` took.
    var heldFor: Duration? { get }

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
    public var heldFor: Duration? { nil }
}
