import Foundation
import PipelineKit
import RabbitMQPlugin
import Synchronization

/// The source of a pipeline test: deliveries handed out one at a time by the test runner, and
/// each settlement recorded (nothing is redelivered: a case ends at each message's decision).
final class TestSource: Source {
    let events: AsyncStream<SourceEvent>
    private let continuation: AsyncStream<SourceEvent>.Continuation
    private let settled = Mutex<[Int: Settlement]>([:])
    /// The pipeline's lanes, as its real source has them (SPEC 14).
    private let sourceLanes: SourceLanes
    var lanes: [Lane] { sourceLanes.all }

    init(lanes: SourceLanes = SourceLanes()) {
        (events, continuation) = AsyncStream.makeStream()
        sourceLanes = lanes
    }

    /// Every message of a case may wait in memory at once.
    var capacity: Int { 1_000_000 }

    /// Hands out the `index`th message of the case.
    func deliver(_ body: [UInt8], index: Int, attemptsMade: Int, lane: Lane?, at now: Date) {
        continuation.yield(.delivery(Delivery(body: body, attemptsMade: attemptsMade, firstSeen: now, lane: lane ?? sourceLanes.normal, receipt: index)))
    }

    /// How the `index`th message was settled, nil while it is not.
    func settlement(of index: Int) -> Settlement? {
        settled.withLock { $0[index] }
    }

    func start() async throws {}

    func settle(_ delivery: Delivery, _ settlement: Settlement) async -> Bool {
        guard let index = delivery.receipt as? Int else { return false }
        settled.withLock { $0[index] = settlement }
        return true
    }

    func pause() {}
    func resume() {}

    func stopIntake() {
        continuation.yield(.intakeStopped)
        continuation.finish()
    }

    func stop() async {}

    func status() -> SourceStatus {
        SourceStatus(connected: true, consuming: true)
    }
}

/// The sink of a pipeline test: keeps each message's first outcome (the one its delivery was
/// settled by), found again by its body.
final class FirstOutcomes: OutcomeSink {
    private let outcomes = Mutex<[[UInt8]: Outcome]>([:])

    func record(_ outcome: Outcome) async throws {
        outcomes.withLock { outcomes in
            if outcomes[outcome.message.body] == nil { outcomes[outcome.message.body] = outcome }
        }
    }

    func outcome(of body: [UInt8]) -> Outcome? {
        outcomes.withLock { $0[body] }
    }
}

/// The lanes of a pipeline's source, as `outbound-worker test` hands messages out in them.
struct SourceLanes {
    var all: [Lane] = []
    /// The lane of `queue`, where a message without a lane goes.
    var normal: Lane?

    static func of(_ definition: PipelineDefinition) -> SourceLanes {
        guard definition.source.uses == SourcePlugin.rabbitMQ.name, let settings = try? RabbitMQSettings(definition.source.settings) else { return SourceLanes() }
        return SourceLanes(all: settings.lanes.map(\.lane), normal: settings.lanes.first { $0.queue == settings.queue }?.lane)
    }
}
