import PipelineKit
import Synchronization

/// The resources' health checks of one `/health` answer: asked at once, each given `deadline`.
/// A check still waiting then is down ("no answer within 2.0 seconds") and goes on alone: a Redis master
/// that does not answer would otherwise hold `/health` for its reconnect and command timeouts,
/// one resource after the other.
enum ResourceChecks {
    static let deadline: Duration = .seconds(2)

    /// Each resource's health by name, in the order given.
    static func run(_ resources: [(name: String, resource: any Resource)], deadline: Duration = deadline) async -> [(name: String, health: HealthStatus)] {
        await withTaskGroup(of: (Int, HealthStatus).self) { group in
            for (index, entry) in resources.enumerated() {
                group.addTask { (index, await health(of: entry.resource, within: deadline)) }
            }
            var found: [(index: Int, health: HealthStatus)] = []
            for await answer in group { found.append(answer) }
            return found.sorted { $0.index < $1.index }.map { (resources[$0.index].name, $0.health) }
        }
    }

    /// `resource.health()`, or down when it has not answered within `deadline`.
    static func health(of resource: any Resource, within deadline: Duration) async -> HealthStatus {
        let answer = AnswerOnce()
        return await withCheckedContinuation { (continuation: CheckedContinuation<HealthStatus, Never>) in
            let timer = Task {
                guard (try? await Task.sleep(for: deadline)) != nil, answer.claim() else { return }
                continuation.resume(returning: .down("no answer within \(deadline)"))
            }
            Task {
                let health = await resource.health()
                timer.cancel()
                if answer.claim() { continuation.resume(returning: health) }
            }
        }
    }
}

/// Lets the first of two racers answer.
private final class AnswerOnce: Sendable {
    private let answered = Atomic(false)

    func claim() -> Bool {
        answered.compareExchange(expected: false, desired: true, ordering: .acquiringAndReleasing).exchanged
    }
}
