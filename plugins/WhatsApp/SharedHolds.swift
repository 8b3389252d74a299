import Foundation
import Logging
import PipelineKit
import Synchronization

/// The holds `dispatch` shares with every worker through a `HoldStore` (SPEC 8, 17): a pair held
/// after `131056`, a sender's marketing after `131048`, grouped by sender.
///
/// What this worker meets it holds at once, then writes to the store, which says how long the
/// hold lasts across workers (one outage, one escalation, whichever worker met it). What others
/// wrote is read at most every `freshness`: one small map of the senders whose holds changed, then
/// the holds of those that did. A message that finds the last read older waits for the next one
/// (two Redis round trips or more, `longestWait` at most; once in a quarter of a second — the
/// others cost one atomic load), so a hold is
/// in effect on every worker for each request that begins `freshness` after it was written.
/// Without a store, and while it cannot be reached, each worker holds alone (a failed read is
/// tried again after `retryAfter`, with no message waiting for it); a sender whose holds could not
/// be read is read again at the next read.
///
/// ```swift
/// await holds.refresh(flow, at: now, logger: logger)                  // before checking flow.holds
/// let until = await holds.hold(pair, group: sender, policy: pairPolicy, kind: .pairHold, reason: "131056", startedAt: begun, flow, logger: logger)
/// await holds.clear(pair, group: sender, startedAt: begun, flow, logger: logger)   // after a success
/// ```
public final class SharedHolds: Sendable {
    /// How old the last read may be before the next message reads again.
    public static let freshness: Duration = .milliseconds(250)
    /// After a failed read, the next one.
    static let retryAfter: Duration = .seconds(1)
    /// How long a message waits for a read at most: a slow store does not hold every message up
    /// (a healthy read takes two round trips, well under a millisecond).
    static let longestWait: Duration = .milliseconds(100)

    private struct State {
        var reading: Task<Void, Never>?
        /// Messages waiting for the read in flight.
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextWaiter = 0
        /// The last read failed: messages do not wait for the next.
        var failing = false
        /// Each group's change as last read (`HoldStore.changes`), and where its last read stood (no holds kept).
        var tokens: [String: String] = [:]
        var lastRead: [String: HoldsRead] = [:]
        /// Changes this worker wrote and could not announce yet, by group.
        var unannounced: [String: String] = [:]
        /// Keys the store keeps (until forgotten), by group: a success clears them there too.
        var known: [String: [String: Date]] = [:]
    }

    private let store: (any HoldStore)?
    /// The policy of each kind the store may hold (a hold met elsewhere lasts and is forgotten by it).
    private let policies: [WaitReason: EscalationPolicy]
    private let state = Mutex(State())
    /// When (epoch ms) the next read is due; before it, a message reads nothing and takes no lock.
    private let nextRead = Atomic<Int64>(.min)
    /// How many keys `known` holds, so a success with none (the common case) takes no lock.
    private let knownCount = Atomic<Int>(0)

    public init(store: (any HoldStore)?, policies: [WaitReason: EscalationPolicy]) {
        self.store = store
        self.policies = policies
    }

    /// Brings the holds met elsewhere into `flow` when the last read is older than `freshness`
    /// (waiting for a read another message began meanwhile, unless reads are failing).
    public func refresh(_ flow: FlowControl, at now: Date, logger: Logger) async {
        guard let store, now.epochMilliseconds() >= nextRead.load(ordering: .acquiring) else { return }
        let wait = state.withLock { state -> Bool in
            if state.reading != nil { return !state.failing }
            guard now.epochMilliseconds() >= nextRead.load(ordering: .acquiring) else { return false }
            state.reading = Task { await self.read(from: store, flow, begun: now, logger: logger) }
            return !state.failing
        }
        if wait { await waitForRead(atMost: Self.longestWait) }
    }

    /// Waits until the read in flight ends, `limit` at most.
    private func waitForRead(atMost limit: Duration) async {
        let id = state.withLock { state in
            defer { state.nextWaiter += 1 }
            return state.nextWaiter
        }
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                await withTaskCancellationHandler {
                    await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                        let now = self.state.withLock { state -> Bool in
                            if state.reading == nil || Task.isCancelled { return true }
                            state.waiters[id] = continuation
                            return false
                        }
                        if now { continuation.resume() }
                    }
                } onCancel: {
                    self.state.withLock { $0.waiters.removeValue(forKey: id) }?.resume()
                }
            }
            group.addTask { try? await Task.sleep(for: limit) }
            await group.next()
            group.cancelAll()
        }
    }

    private func read(from store: any HoldStore, _ flow: FlowControl, begun: Date, logger: Logger) async {
        var failure: StoreUnavailable?
        do throws(StoreUnavailable) {
            let (tokens, lastRead, unannounced) = state.withLock { ($0.tokens, $0.lastRead, $0.unannounced) }
            for (group, change) in unannounced where state.withLock({ $0.unannounced[group] == change }) {
                try await store.announce(group: group, change: change)
                state.withLock { if $0.unannounced[group] == change { $0.unannounced[group] = nil } }
            }
            let changes = try await store.changes()
            let results = await Self.read(changes.filter { tokens[$0.key] != $0.value }, since: lastRead, from: store)
            let reads = results.compactMap { group, token, result in (try? result.get()).map { (group: group, token: token, read: $0) } }
            let now = flow.clock.now()
            for (_, _, read) in reads {
                for hold in read.holds {
                    guard hold.remaining > .zero, let policy = policies[hold.kind] else { continue }
                    flow.holds.adopt(hold.key, until: now.addingTimeInterval(min(hold.remaining, policy.cap).secondsDouble), count: hold.count, policy: policy,
                                     kind: hold.kind, reason: "held by another worker (\(hold.kind))")
                }
            }
            state.withLock { state in
                // Groups no longer named have nothing left to hold or clear.
                state.tokens = state.tokens.filter { changes[$0.key] != nil }
                state.lastRead = state.lastRead.filter { changes[$0.key] != nil }
                for (group, token, read) in reads {
                    state.tokens[group] = token
                    state.lastRead[group] = HoldsRead(holds: [], at: read.at, epoch: read.epoch)
                    for hold in read.holds { remember(hold, in: group, &state, now: now) }
                }
                forgetForgotten(&state, now: now)
            }
            // A sender whose holds could not be read keeps its old change: read again at the next read.
            for (group, _, result) in results {
                if case .failure(let error) = result {
                    logger.warning("holds of a sender not read (again at the next read)", metadata: ["sender": .string(group), "error": .string(error.reason)])
                }
            }
        } catch {
            failure = error
        }
        let waiters = state.withLock { state in
            state.reading = nil
            defer { state.waiters = [:] }
            if let failure {
                if !state.failing { logger.warning("holds of other workers not read (this worker holds alone meanwhile)", metadata: ["error": .string(failure.reason)]) }
                state.failing = true
                nextRead.store(flow.clock.now().addingTimeInterval(Self.retryAfter.secondsDouble).epochMilliseconds(), ordering: .releasing)
            } else {
                if state.failing { logger.notice("holds of other workers read again") }
                state.failing = false
                nextRead.store(begun.addingTimeInterval(Self.freshness.secondsDouble).epochMilliseconds(), ordering: .releasing)
            }
            return state.waiters.values
        }
        waiters.forEach { $0.resume() }
    }

    private typealias GroupRead = (group: String, token: String, result: Result<HoldsRead, StoreUnavailable>)

    /// The holds of the groups that changed, read side by side, `parallelReads` at a time.
    private static func read(_ changed: [String: String], since lastRead: [String: HoldsRead], from store: any HoldStore) async -> [GroupRead] {
        let readOne: @Sendable (String, String) async -> GroupRead = { name, token in
            do throws(StoreUnavailable) {
                return (name, token, .success(try await store.holds(group: name, since: lastRead[name])))
            } catch {
                return (name, token, .failure(error))
            }
        }
        return await withTaskGroup(of: GroupRead.self) { group in
            var waiting = changed.makeIterator()
            for _ in 0..<parallelReads {
                guard let (name, token) = waiting.next() else { break }
                group.addTask { await readOne(name, token) }
            }
            var results: [GroupRead] = []
            for await result in group {
                results.append(result)
                if let (name, token) = waiting.next() { group.addTask { await readOne(name, token) } }
            }
            return results
        }
    }

    /// How many senders' holds a read asks for at once (all of them at a worker's first read).
    static let parallelReads = 16

    /// `key` of `group` was refused (by a request begun at `startedAt`): held on this worker at
    /// once and written to the store, whose answer then stands here too (it knows the outages and
    /// successes of every worker). Returns when the hold ends.
    public func hold(_ key: String, group: String, policy: EscalationPolicy, kind: WaitReason, reason: String, startedAt: Date,
                     _ flow: FlowControl, logger: Logger) async -> Date {
        let local = flow.holds.hold(key, policy: policy, kind: kind, reason: reason, startedAt: startedAt)
        guard let store else { return local.until }
        do {
            let shared = try await store.hold(key, group: group, policy: policy, kind: kind, startedAgo: Self.since(startedAt, flow))
            let now = flow.clock.now()
            state.withLock { remember(shared, in: group, &$0, now: now) }
            // (What the store says is input: no hold lasts beyond its policy's cap.)
            let until = now.addingTimeInterval(min(shared.remaining, policy.cap).secondsDouble)
            flow.holds.adopt(key, until: until, count: shared.count, policy: policy, kind: kind, reason: reason, replacing: true)
            if let change = shared.change { await announce(change, of: group, to: store, logger: logger) }
            return until
        } catch {
            logger.warning("hold not shared with other workers (this worker keeps it)", metadata: ["key": .string(key), "error": .string(error.reason)])
            return local.until
        }
    }

    /// Tells the other workers `group` changed; kept to be announced at the next read if that fails.
    private func announce(_ change: String, of group: String, to store: any HoldStore, logger: Logger) async {
        do {
            try await store.announce(group: group, change: change)
            // An older change not announced yet must not be announced over this one.
            state.withLock { $0.unannounced[group] = nil }
        } catch {
            logger.warning("a hold written but not announced to other workers yet (again at the next read)", metadata: ["sender": .string(group), "error": .string(error.reason)])
            state.withLock { $0.unannounced[group] = change }
        }
    }

    /// A request of `key` of `group` begun at `startedAt` succeeded: its hold ends and its
    /// escalation resets, on this worker and — when the store keeps it — on every worker, unless
    /// the hold began after the request did. (A hold written elsewhere in the last `freshness`,
    /// not read here yet, is not cleared: its escalation resets at the pair's next success.)
    public func clear(_ key: String, group: String, startedAt: Date, _ flow: FlowControl, logger: Logger) async {
        flow.holds.clear(key, startedAt: startedAt)
        guard let store, knownCount.load(ordering: .relaxed) > 0, let forgetAt = forget(key, of: group) else { return }
        var cleared = false
        do {
            cleared = try await store.clear(key, group: group, startedAgo: Self.since(startedAt, flow))
        } catch {
            logger.warning("a hold's end not shared with other workers", metadata: ["key": .string(key), "error": .string(error.reason)])
        }
        // Still held there (it began after the request) or unknown (the store did not answer): the next success clears it.
        if !cleared { state.withLock { remember(key, in: group, forgetAt: forgetAt, &$0) } }
    }

    /// Under the lock of `state`.
    private func remember(_ hold: SharedHold, in group: String, _ state: inout State, now: Date) {
        guard let policy = policies[hold.kind] else { return }
        remember(hold.key, in: group, forgetAt: now.addingTimeInterval(min(hold.remaining, policy.cap).secondsDouble + 2 * policy.cap.secondsDouble), &state)
    }

    private func remember(_ key: String, in group: String, forgetAt: Date, _ state: inout State) {
        let known = state.known[group, default: [:]][key]
        if known == nil { knownCount.add(1, ordering: .relaxed) }
        state.known[group, default: [:]][key] = max(known ?? forgetAt, forgetAt)
    }

    /// Under the lock of `state`: drops the keys the store has forgotten.
    private func forgetForgotten(_ state: inout State, now: Date) {
        guard knownCount.load(ordering: .relaxed) > 0 else { return }
        for (group, keys) in state.known {
            let kept = keys.filter { $0.value > now }
            knownCount.subtract(keys.count - kept.count, ordering: .relaxed)
            state.known[group] = kept.isEmpty ? nil : kept
        }
    }

    /// When the store forgets `key` of `group`, if it keeps it (as far as this worker knows); from now on it does not.
    private func forget(_ key: String, of group: String) -> Date? {
        state.withLock { state in
            guard let forgetAt = state.known[group]?.removeValue(forKey: key) else { return nil }
            knownCount.subtract(1, ordering: .relaxed)
            return forgetAt
        }
    }

    private static func since(_ date: Date, _ flow: FlowControl) -> Duration {
        .milliseconds(Int64(flow.clock.now().timeIntervalSince(date) * 1000))
    }
}
