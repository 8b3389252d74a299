import Foundation
import Synchronization

/// A one-way flag that tasks can wait on: set once, when the worker begins to shut down.
final class ShutdownSignal: Sendable {
    private struct State {
        var raised = false
        var waiters: [Int: CheckedContinuation<Void, Never>] = [:]
        var nextID = 0
    }

    private let state = Mutex(State())
    private let flag = Atomic<Bool>(false)

    var isRaised: Bool { flag.load(ordering: .acquiring) }

    func raise() {
        let waiters = state.withLock { state -> [CheckedContinuation<Void, Never>] in
            state.raised = true
            defer { state.waiters.removeAll() }
            return Array(state.waiters.values)
        }
        flag.store(true, ordering: .releasing)
        waiters.forEach { $0.resume() }
    }

    /// Returns once raised, or when the task is cancelled.
    func wait() async {
        let id = state.withLock { state -> Int in
            defer { state.nextID += 1 }
            return state.nextID
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let now = state.withLock { state -> Bool in
                    if state.raised || Task.isCancelled { return true }
                    state.waiters[id] = continuation
                    return false
                }
                if now { continuation.resume() }
            }
        } onCancel: {
            let waiter = state.withLock { $0.waiters.removeValue(forKey: id) }
            waiter?.resume()
        }
    }

    /// Sleeps for `duration` unless the signal is raised (or the task cancelled) first: true when
    /// the whole duration passed and the signal is still down.
    func sleep(for duration: Duration) async -> Bool {
        guard duration > .zero else { return !isRaised }
        return await sleep { try await Task.sleep(for: duration) }
    }

    /// Sleeps on `clock` until `deadline` unless the signal is raised (or the task cancelled) first:
    /// true when the deadline came and the signal is still down.
    func sleep(until deadline: Date, on clock: any WallClock) async -> Bool {
        await sleep { try await clock.sleep(until: deadline) }
    }

    private func sleep(_ nap: @escaping @Sendable () async throws -> Void) async -> Bool {
        guard !isRaised else { return false }
        let slept = await withTaskGroup(of: Bool.self) { group in
            group.addTask {
                (try? await nap()) != nil
            }
            group.addTask {
                await self.wait()
                return false
            }
            let first = await group.next() ?? false
            group.cancelAll()
            return first
        }
        return slept && !isRaised
    }
}
