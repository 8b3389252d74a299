import PipelineKit
import RedisPlugin

/// What a claim found.
public enum ClaimResult: Sendable, Equatable {
    /// The key was free: it now holds `value` (processing, by this worker).
    case claimed(value: String)
    /// Another delivery completed it.
    case completed(existing: String)
    /// Another worker is processing it, within its lease.
    case inFlight(existing: String)
    /// It was processing past its lease (its owner presumed dead): it now holds `value`.
    case tookOver(value: String, previous: String)
    /// Its send is in doubt (SPEC 13) and the window has `remaining` to run: wait for a status.
    case inDoubt(existing: String, remaining: Duration)
    /// Its send was in doubt for the whole window and the policy resends: it now holds `value` (processing).
    case resending(value: String, previous: String)
    /// Its send was in doubt for the whole window and the policy dead-letters: it stays in doubt.
    case inDoubtExpired(existing: String)
}

/// What marking a key in doubt found.
public enum InDoubtMark: Sendable, Equatable {
    /// The key held the claim (or nothing): it now holds `value` (`in_doubt`).
    case marked(value: String)
    /// A status settled it first (the statuses pipeline wrote it completed): it was sent.
    case completed(existing: String)
    /// Someone else's value (taken over meanwhile): left as it is.
    case other(current: String)
}

/// What writing the completed state found.
public enum CompletionResult: Sendable, Equatable {
    /// The key still held this worker's claim (or there was none to check).
    case asClaimed
    /// Someone else's value was there: the key was taken over meanwhile, so the message may have been sent twice.
    case claimLost(current: String?)
}

/// The store primitives the idempotency steps need; Redis in production, memory in `outbound-worker test`.
/// Every operation is atomic, and leases are judged by the store's clock (never a worker's).
public protocol IdempotencyStore: KeyValueStore {
    /// Claims `key` for `owner`: sets it processing when absent, when processing for longer than
    /// `lease`, or — with `takeOverOwnAfter` (no message of this worker holds the key) — when processing
    /// by `owner` itself for at least that long (a claim whose answer was lost; the wait outlasts a
    /// send that went on without its claim under `fail_open`).
    /// A key `in_doubt` is never taken over by lease: within `inDoubt.window` (from its `since`, by
    /// the store's clock) the claim says how long remains; after it, `inDoubt.decision` says whether
    /// it is claimed again (resend) or stays (dead letter).
    /// `trace`, the `traceparent` of a send whose trace is recorded (`TraceHeaders.isTraceparent`),
    /// goes in the value (`KeyState.trace`): a status that settles the key continues that trace
    /// (anything else given as `trace` is dropped).
    func claim(_ key: String, owner: String, ttl: Duration, lease: Duration, takeOverOwnAfter: Duration?, inDoubt: InDoubtPolicy, trace: String?) async throws(StoreUnavailable) -> ClaimResult
    /// Rewrites the key `{"status":"in_doubt","owner","since","attempt"}` (keeping its TTL; with the
    /// send's `trace`, as `claim`) when it holds `claim` (or nothing: then with `ttl`).
    func markInDoubt(_ key: String, claim: String, owner: String, attempt: Int, ttl: Duration, trace: String?) async throws(StoreUnavailable) -> InDoubtMark
    /// Writes the completed `value` with `ttl` (and the `mapping` of its wamid to its internalId,
    /// kept as long; none for an empty internalId), checking that the key still held `claim`.
    func complete(_ key: String, claim: String?, value: String, ttl: Duration, mapping: (wamid: String, send: MappedSend)?) async throws(StoreUnavailable) -> CompletionResult
    /// Deletes the key while it is `owner`'s `processing` value older than `age` (by the store's
    /// clock): the value of a claim whose answer was lost, which no message is sending.
    func releaseOrphan(_ key: String, owner: String, olderThan age: Duration) async throws(StoreUnavailable) -> OrphanRelease
    /// Deletes the key only while it still holds `claim`; whether it did.
    func release(_ key: String, claim: String) async throws(StoreUnavailable) -> Bool
}

/// What `releaseOrphan` found.
public enum OrphanRelease: Sendable, Equatable {
    /// It was the owner's processing value, old enough: deleted.
    case released
    /// It is the owner's processing value, but younger than the age asked.
    case tooYoung
    /// Absent, or not the owner's processing value (completed, in doubt, another owner's): left as it is.
    case notOrphaned
}
