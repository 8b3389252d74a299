import PipelineKit
import Synchronization

/// The source of a pipeline test: deliveries handed out one at a time by the test runner, and
/// each settlement recorded (nothing is redelivered: a case ends at each message's decision).
final class TestSource: Source {
    let events: AsyncStream<SourceEvent>
    private let continuation: AsyncStream<SourceEvent>.Continuation
    private let settled = Mutex<[Int: Settlement]>([:])

    init() {
        (events, continuation) = AsyncStream.makeStream()
    }

    /// Every message of a case may wait in memory at once.
    var capacity: Int { 1_000_000 }

    /// Hands out the `index`th message of the case.
    func deliver(_ body: [UInt8], index: Int, attemptsMade: Int) {
        continuation.yield(.delivery(Delivery(body: body, attemptsMade: attemptsMade, receipt: index)))
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
