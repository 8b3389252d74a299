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

    /// The length of hold number `count` (0 is the first; a negative count is the first too).
    /// Stops at `cap`, or where it stops growing (a `first` of zero, a `factor` of 1): a count
    /// read from a store, however large, costs a few steps.
    public func length(_ count: Int) -> Duration {
        var length = first
        var step = 0
        while step < count, length < cap {
            let next = length * factor
            guard next > length else { break }
            length = next
            step += 1
        }
        return min(length, cap)
    }
}

/// Holds by key that grow with each outage and reset when cleared: a sender–recipient pair after
/// `131056` (1 s, 4 s, … 256 s), a paused sender (5 s, 10 s, … 5 min).
///
/// A hold grows per outage, not per failure: failures while a key is held (requests that were
/// under way when it began) leave it as it is. When it ends, one caller of `held` is let through
/// to try (the probe) while the others go on waiting for its result, at most `probeWait`: the
/// probe's success `clear`s the key, its failure holds it again, longer.
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
        /// The hold stops consumption (its scope covers every message): why (`PauseScope.cause`).
        public var pausesSource: String?
        /// What it holds, by the names the step gives them (`PauseScope.covers`).
        public var covers: [String] = []
    }

    private struct Entry {
        var until: Date
        var reason: String
        var kind: WaitReason
        var count: Int
        var pausesSource: String?
        var covers: [String]
        /// When this hold began.
        var heldAt: Date
        var forgetAt: Date
        /// How long the others wait for a probe's result.
        var probeWait: Duration
        /// While a probe is out: until when the others wait for it.
        var probeUntil: Date?

        func hold(_ key: String) -> Hold {
            Hold(key: key, until: until, reason: reason, kind: kind, count: count + 1, pausesSource: pausesSource, covers: covers)
        }

        /// The hold as it stands at `now` should the wall clock have stepped back since it began
        /// (NTP, a VM resumed: it began "after" now): it keeps the length it had, from now, instead
        /// of lasting the step longer. Nil when the clock has not stepped back.
        func followingClockBack(to now: Date) -> Entry? {
            let step = heldAt.timeIntervalSince(now)
            guard step > 1 else { return nil }
            var entry = self
            entry.until = until.addingTimeInterval(-step)
            entry.forgetAt = forgetAt.addingTimeInterval(-step)
            entry.probeUntil = probeUntil?.addingTimeInterval(-step)
            entry.heldAt = now
            return entry
        }
    }

    /// The entry of `key`, moved back with the wall clock if it stepped back since (`followingClockBack`).
    /// `now`: the clock's, read here — a caller's may have been read before a wait, and a hold made
    /// meanwhile would look as if the clock had stepped back.
    private static func entry(_ key: String, in entries: inout [String: Entry], at now: Date) -> Entry? {
        guard let entry = entries[key] else { return nil }
        guard let moved = entry.followingClockBack(to: now) else { return entry }
        entries[key] = moved
        return moved
    }

    private let clock: any WallClock
    private let entries = Mutex<[String: Entry]>([:])
    /// Set while any hold exists, so the common case (nothing held) costs one atomic load.
    private let any = Atomic<Bool>(false)

    public init(clock: any WallClock) {
        self.clock = clock
    }

    /// Holds `key` after a failure: the next length of `policy` from now if the key is not held
    /// (its first failure, or its probe's), else the hold as it stands. Returns when it ends and
    /// how long from now.
    /// With `pausesSource` (a cause), the hold also stops consumption while it lasts (`pausingSource`).
    /// `startedAt`: when the failed request began. One that began before the last hold of `key`
    /// did (a slow answer of the outage that hold is for) leaves it as it is, ended or not: it says
    /// nothing of how things stand since, so the caller checks again (`check`) rather than
    /// escalate the next hold as if the probe had failed.
    @discardableResult
    public func hold(_ key: String, policy: EscalationPolicy, kind: WaitReason, reason: String, pausesSource: String? = nil,
                     covers: [String] = [], startedAt: Date? = nil) -> (until: Date, length: Duration) {
        let now = clock.now()
        return entries.withLock { entries in
            prune(&entries, now: now)
            if let current = Self.entry(key, in: &entries, at: now), current.until > now || startedAt.map({ $0 <= current.heldAt }) == true {
                return (current.until, .milliseconds(max(0, Int64((current.until.timeIntervalSince(now) * 1000).rounded(.up)))))
            }
            let count = entries[key].map { $0.count + 1 } ?? 0
            let length = policy.length(count)
            let until = now.addingTimeInterval(length.secondsDouble)
            // Forgotten once it ended and its escalation no longer matters.
            let forgetAt = until.addingTimeInterval(policy.cap.secondsDouble * 2)
            entries[key] = Entry(until: until, reason: reason, kind: kind, count: count, pausesSource: pausesSource, covers: covers, heldAt: now, forgetAt: forgetAt,
                                 probeWait: min(policy.first, .seconds(5)))
            any.store(true, ordering: .releasing)
            return (until, length)
        }
    }

    /// Takes over a hold met elsewhere (another worker's, through a `HoldStore`): `key` is held
    /// until `until`, hold number `count` in a row (0: the first), unless it is held here as long
    /// already. `replacing`: whatever is held here — the hold as the store judged a failure met
    /// here, which knows of outages and successes elsewhere (an ended one included: the caller
    /// checks again). Returns whether it took it.
    @discardableResult
    public func adopt(_ key: String, until: Date, count: Int, policy: EscalationPolicy, kind: WaitReason, reason: String, replacing: Bool = false) -> Bool {
        let now = clock.now()
        guard replacing || until > now else { return false }
        return entries.withLock { entries in
            prune(&entries, now: now)
            if let current = entries[key] {
                if replacing, current.count == count {
                    // The same hold as judged elsewhere: a probe out stays out, its start stays.
                    var entry = current
                    entry.until = until
                    entry.forgetAt = until.addingTimeInterval(policy.cap.secondsDouble * 2)
                    entries[key] = entry
                    return true
                }
                if !replacing, current.until >= until { return false }
            }
            entries[key] = Entry(until: until, reason: reason, kind: kind, count: count, pausesSource: nil, covers: [],
                                 heldAt: min(now, until.addingTimeInterval(-policy.length(count).secondsDouble)),
                                 forgetAt: until.addingTimeInterval(policy.cap.secondsDouble * 2), probeWait: min(policy.first, .seconds(5)))
            any.store(true, ordering: .releasing)
            return true
        }
    }

    /// What `check` finds for one key.
    public enum Check: Sendable, Equatable {
        /// Not held: go on.
        case free
        /// Held (or another caller probes): wait until then.
        case held(Hold)
        /// The hold has ended and this caller is the probe: go on, and `returnProbe` if it does not act after all.
        case probe
    }

    /// The hold on `key` at `now`. Once it has ended, and until the key is cleared or held again, the
    /// first caller probes and the others are held until the probe has had `probeWait` to answer.
    public func check(_ key: String, at now: Date) -> Check {
        guard any.load(ordering: .acquiring) else { return .free }
        return entries.withLock { entries in
            guard var entry = Self.entry(key, in: &entries, at: clock.now()) else { return .free }
            if entry.until > now {
                return .held(entry.hold(key))
            }
            if let probeUntil = entry.probeUntil, probeUntil > now {
                var hold = entry.hold(key)
                hold.until = probeUntil
                return .held(hold)
            }
            entry.probeUntil = now.addingTimeInterval(entry.probeWait.secondsDouble)
            entries[key] = entry
            return .probe
        }
    }

    /// `check` for callers that act whenever they are not held (the probe included).
    public func held(_ key: String, at now: Date) -> Hold? {
        if case .held(let hold) = check(key, at: now) { return hold }
        return nil
    }

    /// A probe of `key` did not act after all (it waits for something else): the next caller probes.
    public func returnProbe(_ key: String) {
        guard any.load(ordering: .acquiring) else { return }
        entries.withLock { entries in
            entries[key]?.probeUntil = nil
        }
    }

    /// Ends the hold on `key` and resets its escalation (after a success). `startedAt`: when the
    /// successful request began — a hold that began after it stands (the success says nothing of since).
    public func clear(_ key: String, startedAt: Date? = nil) {
        guard any.load(ordering: .acquiring) else { return }
        entries.withLock { entries in
            if let startedAt, let entry = entries[key], entry.heldAt > startedAt { return }
            entries[key] = nil
            if entries.isEmpty { any.store(false, ordering: .releasing) }
        }
    }

    /// Ends every hold of `kind` and resets its escalation; returns their keys.
    @discardableResult
    public func clear(kind: WaitReason) -> [String] {
        guard any.load(ordering: .acquiring) else { return [] }
        return entries.withLock { entries in
            let keys = entries.filter { $0.value.kind == kind }.map(\.key)
            for key in keys { entries[key] = nil }
            if entries.isEmpty { any.store(false, ordering: .releasing) }
            return keys.sorted()
        }
    }

    /// Pauses `scope` after a sender-side failure (`hold` with kind `.paused`): a scope that covers
    /// every message stops consumption meanwhile.
    @discardableResult
    public func pause(_ scope: PauseScope, policy: EscalationPolicy, reason: String, startedAt: Date? = nil) -> (until: Date, length: Duration) {
        hold(scope.key, policy: policy, kind: .paused, reason: reason, pausesSource: scope.coversAll ? scope.cause : nil, covers: scope.covers, startedAt: startedAt)
    }

    /// Every hold of `kind` that has not ended, soonest end first.
    public func active(_ kind: WaitReason) -> [Hold] {
        active { $0.kind == kind }
    }

    /// Every hold that stops consumption and has not ended, soonest end first.
    public var pausingSource: [Hold] {
        active { $0.pausesSource != nil }
    }

    private func active(where included: (Entry) -> Bool) -> [Hold] {
        guard any.load(ordering: .acquiring) else { return [] }
        let now = clock.now()
        return entries.withLock { entries in
            for (key, entry) in entries { if let moved = entry.followingClockBack(to: now) { entries[key] = moved } }
            return entries.filter { $0.value.until > now && included($0.value) }
                .map { $0.value.hold($0.key) }
                .sorted { $0.until < $1.until }
        }
    }

    private func prune(_ entries: inout [String: Entry], now: Date) {
        guard entries.count > 1024 else { return }
        entries = entries.filter { $0.value.forgetAt > now }
    }
}
