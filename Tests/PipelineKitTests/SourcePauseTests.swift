import Foundation
import Logging
import PipelineKit
import Testing

/// A sender-side failure that concerns every message pauses consumption: the hold is the one
/// record of the pause, and the worker follows it on its own clock.
@Suite struct SourcePauseTests {
    private struct Refused: Step {
        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            throw StepFailure(.senderSide, "code 190: token expired", code: 190)
        }
    }

    private static let configuration = WorkerConfiguration(concurrency: 2, pause: .seconds(60))

    /// A worker on a manual clock whose only step fails sender-side for the whole pipeline.
    private func start(sink: (any OutcomeSink)? = nil) -> (WorkerTests.ScriptedSource, PipelineWorker, FlowControl, ManualWallClock, Task<Void, any Error>) {
        let logger = Logger(label: "test")
        let clock = ManualWallClock()
        let flow = FlowControl(clock: clock, logger: logger)
        let source = WorkerTests.ScriptedSource()
        let executor = PipelineExecutor(pipelineName: "t", steps: [ExecutorTests.bound("send", Refused(), irreversible: true)], worker: Self.configuration,
                                        workerID: "w", clock: clock, flow: flow, logger: logger)
        let worker = PipelineWorker(source: source, pipelines: FixedPipeline(executor), configuration: Self.configuration, flow: flow, sink: sink,
                                    reportRetry: EscalationPolicy(first: .milliseconds(20), factor: 1, cap: .milliseconds(20)), logger: logger)
        return (source, worker, flow, clock, Task { try await worker.run() })
    }

    @Test func consumptionStaysPausedUntilTheHoldEndsOnTheWorkersClock() async throws {
        let (source, worker, flow, clock, task) = start()
        source.deliver(#"{"internalId":"a"}"#)
        try await WorkerTests.poll { source.consumption == ["pause"] && source.settlements.count == 1 }
        #expect(source.consumption == ["pause"])
        #expect(worker.pauseReason == "code 190: token expired")
        #expect(flow.holds.pausingSource.map(\.key) == ["pipeline:t"], "the hold is the pause's one record")
        guard case .redeliver(let after, _, _, _)? = source.settlements.first else {
            Issue.record("the message waits out the pause: \(source.settlements)")
            return
        }
        #expect(after == .seconds(60))
        // A message that was under way fails in the same outage: still one pause.
        source.deliver(#"{"internalId":"b"}"#)
        try await WorkerTests.poll { source.settlements.count == 2 }
        #expect(source.consumption == ["pause"])
        // 60 s of the worker's clock, not of real time, end it.
        try await WorkerTests.poll { clock.sleepers == 1 }
        clock.advance(by: .seconds(59))
        #expect(source.consumption == ["pause"])
        clock.advance(by: .seconds(1))
        try await WorkerTests.poll { source.consumption == ["pause", "resume"] }
        #expect(source.consumption == ["pause", "resume"])
        #expect(worker.pauseReason == nil)
        worker.beginShutdown()
        try await task.value
    }

    @Test func aReloadEndsThePauseAtOnce() async throws {
        let (source, worker, flow, _, task) = start()
        source.deliver(#"{"internalId":"a"}"#)
        try await WorkerTests.poll { source.consumption == ["pause"] }
        worker.endPauses()
        #expect(source.consumption == ["pause", "resume"], "resumed before endPauses returns")
        #expect(flow.holds.pausingSource.isEmpty)
        #expect(worker.pauseReason == nil)
        // The failure remains: it pauses again, from the first length.
        source.deliver(#"{"internalId":"b"}"#)
        try await WorkerTests.poll { source.consumption.count == 3 }
        #expect(source.consumption == ["pause", "resume", "pause"])
        #expect(flow.holds.pausingSource.first?.count == 1)
        worker.beginShutdown()
        try await task.value
    }

    @Test func consumptionPausesWhenTheFailureIsDecidedNotOnceItsOutcomeIsRecorded() async throws {
        let sink = WorkerTests.RecordingSink(refusals: .max)
        let (source, worker, _, _, task) = start(sink: sink)
        source.deliver(#"{"internalId":"a"}"#)
        try await WorkerTests.poll { source.consumption == ["pause"] }
        #expect(source.consumption == ["pause"], "paused while the outcome is still refused")
        #expect(source.settlements.isEmpty)
        worker.beginShutdown()
        try await task.value
    }

    @Test func decidingAFailureHoldsNothing() {
        let logger = Logger(label: "test")
        let flow = FlowControl(logger: logger)
        let bound = ExecutorTests.bound("send", Refused(), irreversible: true)
        let executor = PipelineExecutor(pipelineName: "t", steps: [bound], worker: Self.configuration, workerID: "w", flow: flow, logger: logger)
        let failure = StepFailure(.senderSide, "code 190", code: 190)
        let first = executor.decide(failure, step: bound, attempt: 1)
        #expect(executor.decide(failure, step: bound, attempt: 1) == first, "the same failure, the same decision")
        #expect(first == .requeue(after: .seconds(60), step: "send", reason: "code 190", pause: PauseScope(key: "pipeline:t", coversAll: true)))
        #expect(flow.holds.active(.paused).isEmpty, "deciding is pure: the worker's run holds the scope")
    }
}
