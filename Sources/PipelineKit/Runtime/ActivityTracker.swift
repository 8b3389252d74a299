import Synchronization

/// Counts running tasks and lets one caller wait until none runs (the drain on shutdown).
final class ActivityTracker: Sendable {
    private struct State {
        var active = 0
        var begun = 0
        var idleWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let state = Mutex(State())

    func begin() {
        state.withLock { state in
            state.active += 1
            state.begun += 1
        }
    }

    func end() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.active -= 1
            guard state.active == 0 else { return [] }
            defer { state.idleWaiters.removeAll() }
            return state.idleWaiters
        }
        waiters.forEach { $0.resume() }
    }

    var active: Int { state.withLock { $0.active } }

    /// Running now, and begun since the start.
    var counts: (active: Int, begun: Int) { state.withLock { ($0.active, $0.begun) } }

    /// Waits until nothing runs or `timeout` passes; whether it became idle.
    func waitUntilIdle(timeout: Duration) async -> Bool {
        await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    // Cancelled (the timeout came first and has let go of the waiters, or is about to under
                    // this lock): not registered, or it would wait for every running task to end by itself.
                    let resumeNow = self.state.withLock { state -> Bool in
                        if state.active == 0 || Task.isCancelled { return true }
                        state.idleWaiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
                return true
            }
            group.addTask {
                try? await Task.sleep(for: timeout)
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            if !first {
                // Unblock the idle waiter so the group can finish: it is resumed by `end` later otherwise.
                let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
                    defer { state.idleWaiters.removeAll() }
                    return state.idleWaiters
                }
                waiters.forEach { $0.resume() }
            }
            await group.waitForAll()
            return first
        }
    }
}
