import Synchronization

/// Pipelines a reload replaced and not retired yet, oldest first. Each is retired — its
/// `shutdown` runs — once nothing uses it and every one that entered the line before it is
/// retired, so a resource the next pipeline reused from it is shut down only after the last
/// message of both. A retirement whose task is cancelled waits all the same: at shutdown, a
/// message still running past the group's limit (a send finishing) must not lose its resources.
///
/// ```swift
/// let place = line.enter(isIdle: { slot.inFlight.load(ordering: .relaxed) == 0 })
/// await line.retire(place) { await shutDownWhatTheNextPipelineDoesNotUse() }
/// ```
final class RetirementLine: Sendable {
    /// One pipeline's place in the line.
    final class Place: Sendable {
        fileprivate let isIdle: @Sendable () -> Bool

        fileprivate init(isIdle: @escaping @Sendable () -> Bool) {
            self.isIdle = isIdle
        }
    }

    private let line = Mutex<[Place]>([])
    /// How often a retirement looks whether its pipeline is idle and first in line.
    private let pollInterval: Duration

    init(pollInterval: Duration = .milliseconds(50)) {
        self.pollInterval = pollInterval
    }

    /// Joins the line, behind every pipeline replaced before.
    func enter(isIdle: @escaping @Sendable () -> Bool) -> Place {
        let place = Place(isIdle: isIdle)
        line.withLock { $0.append(place) }
        return place
    }

    /// Waits until `place` is first in line and idle, runs `shutdown`, and leaves the line.
    func retire(_ place: Place, _ shutdown: () async -> Void) async {
        while line.withLock({ $0.first }) !== place || !place.isIdle() {
            // A sleep of its own: the caller's cancellation must not end the wait.
            await Task.detached { [pollInterval] in try? await Task.sleep(for: pollInterval) }.value
        }
        await shutdown()
        line.withLock { $0.removeAll { $0 === place } }
    }
}
