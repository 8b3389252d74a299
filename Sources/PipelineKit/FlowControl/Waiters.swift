import Synchronization

/// Tasks waiting for what another task will say happened: each waits until `resumeAll`, or until
/// its own task is cancelled. Whether it happened already is asked (`unless`) under the list's
/// lock, so a `resumeAll` that follows the change it reads is never missed; `unless` runs under
/// that lock, so it must be short and must not use this list (the lock is not reentrant).
///
/// ```swift
/// await waiters.wait(unless: { flag.load(ordering: .acquiring) })
/// // elsewhere: flag.store(true, ordering: .releasing); waiters.resumeAll()
/// ```
public final class Waiters: Sendable {
    private struct State {
        var waiting: [UInt64: CheckedContinuation<Void, Never>] = [:]
        var nextID: UInt64 = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// How many tasks wait.
    public var count: Int { state.withLock { $0.waiting.count } }

    /// Returns at the next `resumeAll`, at once when `done()` says it happened already, or when the task is cancelled.
    public func wait(unless done: () -> Bool) async {
        let id = state.withLock { state -> UInt64 in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if done() || Task.isCancelled { return true }
                    state.waiting[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            state.withLock { $0.waiting.removeValue(forKey: id) }?.resume()
        }
    }

    /// Resumes every task waiting now.
    public func resumeAll() {
        let waiting = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            defer { state.waiting.removeAll() }
            return Array(state.waiting.values)
        }
        waiting.forEach { $0.resume() }
    }
}
