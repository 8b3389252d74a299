import Foundation
import Metrics
import Synchronization

/// Where waiting messages of one lane spend their wait in memory: at most `capacity` of them, each
/// key getting a fair share so one busy sender never takes every place. Counts them by reason
/// (`outbound_messages_waiting{reason, lane}`; no `lane` label for a source without lanes) and
/// knows the oldest (`outbound_oldest_waiting_seconds`).
final class Parking: Sendable {
    enum Result { case due, shutdown }

    private struct Parked {
        var key: String
        var reason: WaitReason
        var since: ContinuousClock.Instant
    }

    private struct State {
        var parked: [Int: Parked] = [:]
        var byKey: [String: Int] = [:]
        var byReason: [WaitReason: Int] = [:]
        var nextID = 0
    }

    let capacity: Int
    private let state = Mutex(State())
    private let shutdown: ShutdownSignal
    private let gauges: [WaitReason: Gauge]

    private let lane: Lane?

    init(capacity: Int, lane: Lane?, shutdown: ShutdownSignal) {
        self.capacity = max(1, capacity)
        self.shutdown = shutdown
        self.lane = lane
        gauges = Dictionary(uniqueKeysWithValues: WaitReason.known.map { ($0, Self.gauge($0, lane)) })
        gauges.values.forEach { $0.record(0) }
    }

    /// Takes a place for `wait` if there is one: the total under `capacity` and its key under a fair
    /// share, or in any case when `beyondCapacity` (a short wait). Returns the place's id, nil when
    /// the message must wait elsewhere.
    func admit(_ wait: Wait, beyondCapacity: Bool = false) -> Int? {
        let (id, count) = state.withLock { state -> (Int?, Int) in
            let keys = state.byKey.count + (state.byKey[wait.key] == nil ? 1 : 0)
            let share = max(1, capacity / max(1, keys))
            guard beyondCapacity || (state.parked.count < capacity && state.byKey[wait.key, default: 0] < share) else { return (nil, 0) }
            let id = state.nextID
            state.nextID += 1
            state.parked[id] = Parked(key: wait.key, reason: wait.reason, since: .now)
            state.byKey[wait.key, default: 0] += 1
            state.byReason[wait.reason, default: 0] += 1
            return (id, state.byReason[wait.reason, default: 0])
        }
        if id != nil { gauge(wait.reason).record(count) }
        return id
    }

    /// Waits in place `id` until `until` on `clock` or shutdown, then gives the place up.
    func wait(_ id: Int, until: Date, clock: any WallClock) async -> Result {
        let due = await shutdown.sleep(until: until, on: clock)
        leave(id)
        return due ? .due : .shutdown
    }

    /// How long the longest-waiting message has waited, zero when none waits.
    var oldestWait: Duration {
        state.withLock { state in
            guard let oldest = state.parked.values.map(\.since).min() else { return .zero }
            return ContinuousClock.now - oldest
        }
    }

    private func leave(_ id: Int) {
        let (reason, count) = state.withLock { state -> (WaitReason?, Int) in
            guard let parked = state.parked.removeValue(forKey: id) else { return (nil, 0) }
            state.byKey[parked.key, default: 1] -= 1
            if state.byKey[parked.key] == 0 { state.byKey[parked.key] = nil }
            state.byReason[parked.reason, default: 1] -= 1
            return (parked.reason, state.byReason[parked.reason, default: 0])
        }
        if let reason { gauge(reason).record(count) }
    }

    private func gauge(_ reason: WaitReason) -> Gauge {
        gauges[reason] ?? Self.gauge(reason, lane)
    }

    private static func gauge(_ reason: WaitReason, _ lane: Lane?) -> Gauge {
        Gauge(label: "outbound_messages_waiting", dimensions: [("reason", reason.rawValue)] + (lane.map { [("lane", $0.name)] } ?? []))
    }
}
