import Foundation
import Synchronization

/// The time of day as steps and the worker see it, and how they wait for a moment to come.
/// `outbound-worker test` replaces it with a `ManualWallClock` the test runner moves on.
public protocol WallClock: Sendable {
    func now() -> Date
    /// Returns at `deadline` (at once if it has passed); throws `CancellationError` when the
    /// task is cancelled first.
    func sleep(until deadline: Date) async throws
}

/// The system clock.
public struct SystemWallClock: WallClock {
    public init() {}

    public func now() -> Date { Date() }

    public func sleep(until deadline: Date) async throws {
        let delay = deadline.timeIntervalSince(Date())
        guard delay > 0 else { return }
        try await Task.sleep(for: .nanoseconds(Int64(delay * 1e9)))
    }
}

/// A clock that moves only when told to: its sleepers wake when it is moved past their deadline,
/// the earliest first (`wakeEarliest`), so a test can run waiting messages in a fixed order.
public final class ManualWallClock: WallClock {
    private struct Sleeper {
        var deadline: Date
        var continuation: CheckedContinuation<Void, any Error>
    }

    private struct State {
        var now: Date
        var sleepers: [Int: Sleeper] = [:]
        var nextID = 0
    }

    private let state: Mutex<State>

    public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        state = Mutex(State(now: start))
    }

    public func now() -> Date {
        state.withLock { $0.now }
    }

    public func sleep(until deadline: Date) async throws {
        let id = state.withLock { state -> Int in
            defer { state.nextID += 1 }
            return state.nextID
        }
        try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<Void, any Error>) in
                let answer = state.withLock { state -> Result<Void, any Error>? in
                    if Task.isCancelled { return .failure(CancellationError()) }
                    if deadline <= state.now { return .success(()) }
                    state.sleepers[id] = Sleeper(deadline: deadline, continuation: continuation)
                    return nil
                }
                if let answer { continuation.resume(with: answer) }
            }
        } onCancel: {
            let sleeper = state.withLock { $0.sleepers.removeValue(forKey: id) }
            sleeper?.continuation.resume(throwing: CancellationError())
        }
    }

    /// The earliest deadline a task sleeps until, nil when none sleeps.
    public var nextDeadline: Date? {
        state.withLock { $0.sleepers.values.map(\.deadline).min() }
    }

    /// How many tasks sleep on this clock now.
    public var sleepers: Int {
        state.withLock { $0.sleepers.count }
    }

    /// Moves the clock on by `duration`, waking every sleeper due by then.
    public func advance(by duration: Duration) {
        let due = state.withLock { state -> [Sleeper] in
            state.now = state.now.addingTimeInterval(duration.secondsDouble)
            let now = state.now
            let ids = state.sleepers.filter { $0.value.deadline <= now }.map(\.key)
            return ids.compactMap { state.sleepers.removeValue(forKey: $0) }
        }
        due.forEach { $0.continuation.resume() }
    }

    /// Moves the clock to the earliest sleeper's deadline (if later than now) and wakes that one
    /// sleeper only (of equal deadlines, the one that began sleeping first); false when none sleeps.
    @discardableResult
    public func wakeEarliest() -> Bool {
        let sleeper = state.withLock { state -> Sleeper? in
            guard let (id, earliest) = state.sleepers.min(by: { ($0.value.deadline, $0.key) < ($1.value.deadline, $1.key) }) else { return nil }
            state.now = max(state.now, earliest.deadline)
            return state.sleepers.removeValue(forKey: id)
        }
        sleeper?.continuation.resume()
        return sleeper != nil
    }
}
