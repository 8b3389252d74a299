import Foundation
import Synchronization

/// How long a hold lasts each time it is renewed before it is cleared: `first`, then × `factor`, at most `cap`.
public struct EscalationPolicy: Sendable, Hashable {
    public var first: Duration
    public var factor: Int
    public var cap: Duration

    public init(first: Duration, factor: Int, cap: Duration) {
        self.first = first
        self.factor = max(1, factor)
        self.cap = cap
    }

    /// The length of hold number `count` (0 is the first).
    public func length(_ count: Int) -> Duration {
        var length = first
        for _ in 0..<count where length < cap { length = length * factor }
        return min(length, cap)
    }
}

/// Holds by key that grow each time they are renewed and reset when cleared: a sender–recipient
/// pair after `131056` (1 s, 4 s, … 256 s), a paused sender (5 s, 10 s, … 5 min).
///
/// ```swift
/// let (until, _) = holds.hold("pair:123:+5511…", policy: pairPolicy, kind: .pairHold, reason: "131056")
/// if let held = holds.held("pair:123:+5511…", at: now) { return .wait(Wait(key: …, until: held.until, reason: .pairHold)) }
/// holds.clear("pair:123:+5511…")   // after the pair's first success
/// ```
public final class EscalatingHolds: Sendable {
    /// One hold as reported on `/health`.
    public struct Hold: Sendable, Equatable {
        public var key: String
        public var until: Date
        public var reason: String
        public var kind: WaitReason
        /// Holds in a row since the key was last cleared, this one included.
        public var count: Int
    }

    private struct Entry {
        var until: Date
        var reason: String
        var kind: WaitReason
        var count: Int
        var forgetAt: Date
    }

    private let clock: any WallClock
    private let entries = Mutex<[String: Entry]>([:])
    /// Set while any hold exists, so the common case (nothing held) costs one atomic load.
    private let any = Atomic<Bool>(false)

    public init(clock: any WallClock) {
        self.clock = clock
    }

    /// Holds `key` (again): the next length of `policy`, counted from now. Returns when it ends and how long it is.
    @discardableResult
    public func hold(_ key: String, policy: EscalationPolicy, kind: WaitReason, reason: String) -> (until: Date, length: Duration) {
        let now = clock.now()
        return entries.withLock { entries in
            prune(&entries, now: now)
            let count = entries[key].map { $0.count + 1 } ?? 0
            let length = policy.length(count)
            let until = now.addingTimeInterval(length.secondsDouble)
            // Forgotten once it ended and its escalation no longer matters.
            let forgetAt = until.addingTimeInterval(policy.cap.secondsDouble * 2)
            entries[key] = Entry(until: until, reason: reason, kind: kind, count: count, forgetAt: forgetAt)
            any.store(true, ordering: .releasing)
            return (until, length)
        }
    }

    /// The hold on `key` if it has not ended at `now`.
    public func held(_ key: String, at now: Date) -> Hold? {
        guard any.load(ordering: .acquiring) else { return nil }
        return entries.withLock { entries in
            guard let entry = entries[key], entry.until > now else { return nil }
            return Hold(key: key, until: entry.until, reason: entry.reason, kind: entry.kind, count: entry.count + 1)
        }
    }

    /// Ends the hold on `key` and resets its escalation (after a success).
    public func clear(_ key: String) {
        guard any.load(ordering: .acquiring) else { return }
        entries.withLock { entries in
            entries[key] = nil
            if entries.isEmpty { any.store(false, ordering: .releasing) }
        }
    }

    /// Every hold of `kind` that has not ended, soonest end first.
    public func active(_ kind: WaitReason) -> [Hold] {
        let now = clock.now()
        return entries.withLock { entries in
            entries.filter { $0.value.until > now && $0.value.kind == kind }
                .map { Hold(key: $0.key, until: $0.value.until, reason: $0.value.reason, kind: kind, count: $0.value.count + 1) }
                .sorted { $0.until < $1.until }
        }
    }

    private func prune(_ entries: inout [String: Entry], now: Date) {
        guard entries.count > 1024 else { return }
        entries = entries.filter { $0.value.forgetAt > now }
    }
}
