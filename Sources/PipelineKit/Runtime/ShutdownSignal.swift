import Foundation
import Synchronization

/// A one-way flag that tasks can wait on: set once, when the worker begins to shut down (or its
/// `run` ends without a shutdown: `PipelineWorker.stopping`).
final class ShutdownSignal: Sendable {
    private let flag = Atomic<Bool>(false)
    private let waiters = Waiters()

    var isRaised: Bool { flag.load(ordering: .acquiring) }

    func raise() {
        flag.store(true, ordering: .releasing)
        waiters.resumeAll()
    }

    /// Returns once raised, or when the task is cancelled.
    func wait() async {
        await waiters.wait(unless: { isRaised })
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
