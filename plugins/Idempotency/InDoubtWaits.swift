import Metrics
import Synchronization

/// Sends in doubt this worker waits on: `outbound_in_doubt` (waiting now) and
/// `outbound_in_doubt_total{resolution}` (`status`, `resent`, `dead_letter`) — and the keys whose
/// send in doubt could not be marked `in_doubt` yet (the store was down), whose `processing` value
/// is that send's claim: no other claim of this worker takes such a value over as an orphan, nor
/// releases it as a lost claim (`isWaiting`).
final class InDoubtWaits: Sendable {
    static let shared = InDoubtWaits()

    /// A send in doubt whose key could not be marked: what marking it takes.
    struct Unmarked {
        var since: ContinuousClock.Instant
        /// The store it is to be marked in (the step's).
        var store: ObjectIdentifier
        var claim: String
        var owner: String
        var attempt: Int
        /// The send's traceparent, when its trace is recorded.
        var trace: String?
    }

    private struct State {
        /// When each wait was last seen.
        var waiting: [String: ContinuousClock.Instant] = [:]
        /// Keys not marked yet.
        var unmarked: [String: Unmarked] = [:]
        var prunedAt = ContinuousClock.now
    }

    private let state = Mutex(State())
    /// Set while any waits or is unmarked, so `touch` and `isWaiting` cost one atomic load when none does.
    private let any = Atomic<Bool>(false)
    private let gauge = Gauge(label: "outbound_in_doubt")
    private let resolutions = Dictionary(uniqueKeysWithValues: ["status", "resent", "dead_letter"].map {
        ($0, Counter(label: "outbound_in_doubt_total", dimensions: [("resolution", $0)]))
    })
    /// A wait not seen for this long left this worker (a shutdown, a trip through the source to another).
    static let forgetWaitAfter = Duration.seconds(60)
    /// An unmarked key is forgotten after this (the first claim after the store answers marks it;
    /// this only bounds the table through a long outage).
    static let forgetUnmarkedAfter = Duration.seconds(1800)

    private init() {
        gauge.record(0)
    }

    /// Makes the series exist from the start (at 0), so alerts see them before the first send in doubt.
    static func register() {
        _ = shared
    }

    /// A message waits on `key` (again).
    func begin(_ key: String) {
        update { $0.waiting[key] = ContinuousClock.now }
    }

    /// The send on `key` is settled (`status`), sent again (`resent`) or dead-lettered.
    func end(_ key: String, resolution: String) {
        resolutions[resolution]?.increment()
        stopWaiting(key)
    }

    /// A message stops waiting on `key` without resolving it (another delivery of it reported that).
    func stopWaiting(_ key: String) {
        update { state in
            state.waiting[key] = nil
            state.unmarked[key] = nil
        }
    }

    /// The send in doubt on `key` could not be marked: its key still holds the claim's `processing` value.
    func notMarked(_ key: String, in store: ObjectIdentifier, claim: String, owner: String, attempt: Int, trace: String?) {
        update { state in
            if state.unmarked[key] == nil { state.unmarked[key] = Unmarked(since: ContinuousClock.now, store: store, claim: claim, owner: owner, attempt: attempt, trace: trace) }
        }
    }

    /// The keys of `owner` in `store` still to be marked (one atomic load when none is).
    func unmarked(in store: ObjectIdentifier, owner: String) -> [(key: String, pending: Unmarked)] {
        guard any.load(ordering: .acquiring) else { return [] }
        return state.withLock { state in
            state.unmarked.filter { $0.value.store == store && $0.value.owner == owner }.map { ($0.key, $0.value) }
        }
    }

    /// `key` is marked `in_doubt` (or holds another's value): nothing of this worker's is left to protect.
    func marked(_ key: String) {
        guard any.load(ordering: .acquiring) else { return }
        update { $0.unmarked[key] = nil }
    }

    /// Whether a message of this worker waits in doubt on `key` (seen in the last minute), or its send
    /// could not be marked yet: its key may hold a `processing` value of this worker's that no message
    /// here holds, yet is no orphan. One atomic load when none does.
    func isWaiting(_ key: String) -> Bool {
        guard any.load(ordering: .acquiring) else { return false }
        let now = ContinuousClock.now
        return state.withLock { state in
            state.unmarked[key] != nil || state.waiting[key].map { now - $0 < Self.forgetWaitAfter } ?? false
        }
    }

    /// Forgets what went stale; called for every claim: one atomic load when nothing waits, and
    /// the tables are pruned at most once a second.
    func touch() {
        guard any.load(ordering: .acquiring) else { return }
        update { _ in }
    }

    private func update(_ change: (inout State) -> Void) {
        let now = ContinuousClock.now
        let count = state.withLock { state -> Int in
            change(&state)
            if now - state.prunedAt >= .seconds(1) {
                state.waiting = state.waiting.filter { now - $0.value < Self.forgetWaitAfter }
                state.unmarked = state.unmarked.filter { now - $0.value.since < Self.forgetUnmarkedAfter }
                state.prunedAt = now
            }
            // Under the lock: two updates storing what each found, out of order, could leave it
            // false with a key still unmarked (and that key taken over as an orphan).
            any.store(!state.waiting.isEmpty || !state.unmarked.isEmpty, ordering: .releasing)
            return state.waiting.count
        }
        gauge.record(count)
    }
}
