import Foundation
import Logging
import Metrics
import Synchronization

/// Paces one key (a sender) at its limit: a GCRA whose slots come, a few at a time, from a
/// `SlotStore` shared by every worker, or from a local one while there is no store or it is down.
///
/// It paces at 95 % of the limit, so network jitter never lets a one-second window pass the
/// limit; `slowDown` halves the rate (at most once a second) when the other side says it was
/// exceeded, `speedUp` wins 5 % of the limit back per second of successful sends.
///
/// ```swift
/// let slot = await pacer.reserve()          // the time this message may go out
/// if slot > now { return .wait(Wait(key: pacer.key, until: slot, reason: .throughput)) }
/// ```
public final class SendPacer: Sendable {
    /// Fraction of the limit paced at.
    public static let headroom = 0.95
    /// A slot this far in the past may still be used (capacity not used yet, within one window's tolerance).
    public static let staleness: TimeInterval = 0.05
    /// Slots taken from the store at once cover about this much time.
    public static let batchWindow: TimeInterval = 0.1

    private struct State {
        var limit: Double
        var store: (any SlotStore)?
        var multiplier = 1.0
        var lastSlowdown: Date?
        /// Slots taken from the store and not used yet, earliest first.
        var slots: [Date] = []
        var localNext: Date?
        var storeRetryAt: Date?
        var fetching = false
        var demand = 0
        var waiters: [CheckedContinuation<Void, Never>] = []

        var rate: Double { limit * SendPacer.headroom * multiplier }
        var interval: TimeInterval { 1 / rate }
    }

    /// The key paced (`throughput:{sender}`), also the key of waits for it.
    public let key: String
    private let clock: any WallClock
    private let logger: Logger
    private let state: Mutex<State>
    private let rateGauge: Gauge

    init(key: String, label: String, limit: Double, store: (any SlotStore)?, clock: any WallClock, logger: Logger) {
        self.key = key
        self.clock = clock
        self.logger = logger
        state = Mutex(State(limit: max(limit, 0.001), store: store))
        rateGauge = Gauge(label: "outbound_sender_rate", dimensions: [("sender", label)])
        rateGauge.record(max(limit, 0.001) * Self.headroom)
    }

    /// The rate paced at now, messages per second.
    public var rate: Double { state.withLock { $0.rate } }

    /// Applies a reloaded limit or store.
    func configure(limit: Double, store: (any SlotStore)?) {
        let changed = state.withLock { state -> Bool in
            let sameStore = (state.store as AnyObject?) === (store as AnyObject?)
            guard state.limit != limit || !sameStore else { return false }
            state.limit = max(limit, 0.001)
            state.store = store
            state.slots.removeAll()
            return true
        }
        if changed { rateGauge.record(rate) }
    }

    /// Reserves the next send slot: the time the message may go out (now or earlier means at once).
    public func reserve() async -> Date {
        while true {
            enum Next { case slot(Date), fetch(any SlotStore, count: Int, interval: TimeInterval), waitForFetch }
            let next: Next = state.withLock { state in
                let now = clock.now()
                let oldest = now.addingTimeInterval(-Self.staleness)
                if let stale = state.slots.firstIndex(where: { $0 >= oldest }) {
                    state.slots.removeFirst(stale)
                } else {
                    state.slots.removeAll()
                }
                if !state.slots.isEmpty { return .slot(state.slots.removeFirst()) }
                if let store = state.store, state.storeRetryAt.map({ now >= $0 }) ?? true {
                    if state.fetching {
                        state.demand += 1
                        return .waitForFetch
                    }
                    state.fetching = true
                    let count = min(512, max(Int((state.rate * Self.batchWindow).rounded(.up)), state.demand + 1, 1))
                    state.demand = 0
                    return .fetch(store, count: count, interval: state.interval)
                }
                let slot = max(state.localNext ?? now, now)
                state.localNext = slot.addingTimeInterval(state.interval)
                return .slot(slot)
            }
            switch next {
            case .slot(let slot):
                return slot
            case .waitForFetch:
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state -> Bool in
                        guard state.fetching else { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            case .fetch(let store, let count, let interval):
                await fetch(from: store, count: count, interval: interval)
            }
        }
    }

    private func fetch(from store: any SlotStore, count: Int, interval: TimeInterval) async {
        let result: Result<Duration, any Error>
        do {
            result = .success(try await store.takeSlots(key: key, interval: .nanoseconds(Int64(interval * 1e9)), count: count))
        } catch {
            result = .failure(error)
        }
        let now = clock.now()
        let (waiters, recovered, failedFirst) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Bool, Bool) in
            var recovered = false
            var failedFirst = false
            switch result {
            case .success(let first):
                recovered = state.storeRetryAt != nil
                state.storeRetryAt = nil
                let start = now.addingTimeInterval(first.secondsDouble)
                let granted = (0..<count).map { start.addingTimeInterval(Double($0) * interval) }
                state.slots = (state.slots + granted).sorted()
            case .failure:
                failedFirst = state.storeRetryAt == nil
                state.storeRetryAt = now.addingTimeInterval(1)
            }
            state.fetching = false
            defer { state.waiters.removeAll() }
            return (state.waiters, recovered, failedFirst)
        }
        if recovered { logger.notice("send slots shared through the store again", metadata: ["pacer": .string(key)]) }
        if failedFirst, case .failure(let error) = result {
            logger.warning("send slot store unavailable; pacing this worker alone meanwhile", metadata: ["pacer": .string(key), "error": "\(error)"])
        }
        waiters.forEach { $0.resume() }
    }

    /// The other side said the limit was exceeded: halve the rate (at most once a second).
    public func slowDown() {
        let now = clock.now()
        let slowed = state.withLock { state -> Bool in
            if let last = state.lastSlowdown, now.timeIntervalSince(last) < 1 { return false }
            state.lastSlowdown = now
            state.multiplier = max(0.05, state.multiplier * 0.5)
            state.slots.removeAll()
            if let local = state.localNext { state.localNext = max(local, now.addingTimeInterval(state.interval)) }
            return true
        }
        if slowed {
            rateGauge.record(rate)
            logger.warning("sender over its limit: pacing slower", metadata: ["pacer": .string(key), "rate": "\(Int(rate.rounded()))/s"])
        }
    }

    /// A send succeeded: win back 5 % of the limit per second of successes.
    public func speedUp() {
        let rate: Double? = state.withLock { state in
            guard state.multiplier < 1 else { return nil }
            state.multiplier = min(1, state.multiplier + 0.05 / max(1, state.rate))
            return state.rate
        }
        if let rate { rateGauge.record(rate) }
    }
}
