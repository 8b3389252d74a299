import Foundation
import Logging
import PipelineKit
import Synchronization

/// The holds `dispatch` shares with every worker through a `HoldStore` (SPEC 8, 17): a pair held
/// after `131056`, a sender's marketing after `131048`, grouped by sender.
///
/// What this worker meets it holds at once, then writes to the store, which says how long the
/// hold lasts across workers (one outage, one escalation, whichever worker met it). A sender's
/// holds met elsewhere are read at most every `freshness`: the sender's messages that find the last
/// read older wait for the next one, so a hold is in effect on every worker within `freshness` of
/// being written. Without a store, and while it cannot be read, each worker holds alone (a failed
/// read is tried again after `retryAfter`, with no message waiting for it).
///
/// ```swift
/// await holds.refresh(sender, flow, at: now, logger: logger)          // before checking flow.holds
/// let until = await holds.hold(pair, group: sender, policy: pairPolicy, kind: .pairHold, reason: "131056", startedAt: begun, flow, logger: logger)
/// await holds.clear(pair, group: sender, flow, logger: logger)        // after a success
/// ```
public final class SharedHolds: Sendable {
    /// How old a sender's last read may be before its next message reads again.
    public static let freshness: TimeInterval = 0.25
    /// After a failed read, the next one.
    static let retryAfter: TimeInterval = 1

    private struct Group {
        /// When the last read began, or when the next may (after a failure).
        var readAt: Date?
        var retryAt: Date?
        /// The store's time of the last read: the next reads only what began since.
        var since: Int64?
        var reading: Task<Void, Never>?
        /// Keys the store keeps for this group (not forgotten): a success clears them there too.
        var known: Set<String> = []
    }

    public let store: (any HoldStore)?
    /// The policy of each kind the store may hold (a hold met elsewhere lasts and is forgotten by it).
    private let policies: [WaitReason: EscalationPolicy]
    private let groups = Mutex<[String: Group]>([:])

    public init(store: (any HoldStore)?, policies: [WaitReason: EscalationPolicy]) {
        self.store = store
        self.policies = policies
    }

    /// Brings the holds of `group` met elsewhere into `flow`, when its last read is older than
    /// `freshness` (waiting for a read another message began meanwhile).
    public func refresh(_ group: String, _ flow: FlowControl, at now: Date, logger: Logger) async {
        guard let store else { return }
        let reading = groups.withLock { groups -> Task<Void, Never>? in
            var entry = groups[group] ?? Group()
            if let reading = entry.reading { return entry.retryAt == nil ? reading : nil }
            if let retryAt = entry.retryAt, now < retryAt { return nil }
            if entry.retryAt == nil, let readAt = entry.readAt, now.timeIntervalSince(readAt) < Self.freshness { return nil }
            let since = entry.since
            let task = Task { await self.read(group, since: since, from: store, flow, begun: now, logger: logger) }
            entry.reading = task
            groups[group] = entry
            return entry.retryAt == nil ? task : nil
        }
        await reading?.value
    }

    private func read(_ group: String, since: Int64?, from store: any HoldStore, _ flow: FlowControl, begun: Date, logger: Logger) async {
        do {
            let read = try await store.holds(group: group, since: since)
            let now = flow.clock.now()
            for hold in read.holds {
                guard hold.remaining > .zero, let policy = policies[hold.kind] else { continue }
                flow.holds.adopt(hold.key, until: now.addingTimeInterval(hold.remaining.secondsDouble), count: hold.count, policy: policy,
                                 kind: hold.kind, reason: "held by another worker (\(hold.kind))")
            }
            groups.withLock { groups in
                var entry = groups[group] ?? Group()
                entry.reading = nil
                entry.readAt = begun
                entry.retryAt = nil
                entry.since = read.at
                Self.remember(read.holds.map(\.key), in: &entry)
                groups[group] = entry
            }
        } catch {
            groups.withLock { groups in
                if groups[group]?.retryAt == nil { logger.warning("holds of other workers not read (this worker holds alone meanwhile)", metadata: ["sender": .string(group), "error": .string(error.reason)]) }
                groups[group, default: Group()].reading = nil
                groups[group, default: Group()].retryAt = flow.clock.now().addingTimeInterval(Self.retryAfter)
            }
        }
    }

    /// `key` of `group` was refused (by a request begun at `startedAt`): held on this worker at
    /// once and written to the store, whose answer then stands here too (it knows the outages and
    /// successes of every worker). Returns when the hold ends.
    public func hold(_ key: String, group: String, policy: EscalationPolicy, kind: WaitReason, reason: String, startedAt: Date,
                     _ flow: FlowControl, logger: Logger) async -> Date {
        let local = flow.holds.hold(key, policy: policy, kind: kind, reason: reason, startedAt: startedAt)
        guard let store else { return local.until }
        do {
            let startedAgo = Duration.milliseconds(Int64(flow.clock.now().timeIntervalSince(startedAt) * 1000))
            let shared = try await store.hold(key, group: group, policy: policy, kind: kind, startedAgo: startedAgo)
            groups.withLock { Self.remember([key], in: &$0[group, default: Group()]) }
            let until = flow.clock.now().addingTimeInterval(shared.remaining.secondsDouble)
            flow.holds.adopt(key, until: until, count: shared.count, policy: policy, kind: kind, reason: reason, replacing: true)
            return until
        } catch {
            logger.warning("hold not shared with other workers (this worker keeps it)", metadata: ["key": .string(key), "error": .string(error.reason)])
            return local.until
        }
    }

    /// Ends the hold on `key` of `group` and resets its escalation, on this worker and — when the
    /// store keeps it — on every worker.
    public func clear(_ key: String, group: String, _ flow: FlowControl, logger: Logger) async {
        flow.holds.clear(key)
        guard let store, groups.withLock({ $0[group]?.known.remove(key) != nil }) else { return }
        do {
            try await store.clear(key, group: group)
        } catch {
            logger.warning("a hold's end not shared with other workers", metadata: ["key": .string(key), "error": .string(error.reason)])
        }
    }

    private static func remember(_ keys: [String], in entry: inout Group) {
        if entry.known.count > 4096 { entry.known.removeAll() }
        entry.known.formUnion(keys)
    }
}
