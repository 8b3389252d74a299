import Foundation
import Logging
import PipelineKit
import Synchronization
import Testing
import TestSupport

/// The worker loop on an in-memory source: how it reports and settles what the executor decided.
@Suite struct WorkerTests {
    /// Hands out the deliveries it is given and records each settlement.
    final class ScriptedSource: Source {
        let events: AsyncStream<SourceEvent>
        private let continuation: AsyncStream<SourceEvent>.Continuation
        private let settled = Mutex<[Settlement]>([])
        private let flow = Mutex<[String]>([])
        /// `stopIntake` is confirmed only by `confirmIntakeStopped` (a broker slow to answer the consumer's cancel).
        private let slowToStop: Bool

        /// `handsBack`: cannot hold a delivery while its outcome is refused (a webhook's 503).
        private let handsBack: Bool

        init(slowToStop: Bool = false, handsBack: Bool = false) {
            self.slowToStop = slowToStop
            self.handsBack = handsBack
            (events, continuation) = AsyncStream.makeStream()
        }

        var keepsDeliveriesWhileOutcomesAreRefused: Bool { !handsBack }

        func confirmIntakeStopped() {
            continuation.yield(.intakeStopped)
        }

        var capacity: Int { 8 }
        var settlements: [Settlement] { settled.withLock { $0 } }
        /// `pause` and `resume` calls, in order.
        var consumption: [String] { flow.withLock { $0 } }

        func deliver(_ body: String) {
            continuation.yield(.delivery(Delivery(body: Array(body.utf8), receipt: 0)))
        }

        func start() async throws {}
        func settle(_ delivery: Delivery, _ settlement: Settlement) async -> Bool {
            settled.withLock { $0.append(settlement) }
            return true
        }
        func pause() { flow.withLock { $0.append("pause") } }
        func resume() { flow.withLock { $0.append("resume") } }
        func stopIntake() {
            if !slowToStop { continuation.yield(.intakeStopped) }
        }
        func stop() async {
            continuation.finish()
        }
        func status() -> SourceStatus { SourceStatus(connected: true, consuming: true) }
    }

    /// Records what it is told; refuses the first `refusals` reports (`Int.max`: every one);
    /// while `held`, a report does not return (a broker slow to confirm).
    final class RecordingSink: OutcomeSink {
        private let outcomes = Mutex<[Outcome]>([])
        private let holding: Mutex<Bool>
        private let refusalsLeft: Mutex<Int>

        init(refusals: Int = 0, held: Bool = false) {
            refusalsLeft = Mutex(refusals)
            holding = Mutex(held)
        }

        var recorded: [Outcome] { outcomes.withLock { $0 } }
        func release() { holding.withLock { $0 = false } }

        func record(_ outcome: Outcome) async throws {
            outcomes.withLock { $0.append(outcome) }
            while holding.withLock({ $0 }) { try await Task.sleep(for: .milliseconds(2)) }
            let refused = refusalsLeft.withLock { left in
                defer { if left > 0 { left -= 1 } }
                return left > 0
            }
            if refused { throw CancellationError() }
        }
    }

    /// A step after the send that notes whether the outcome had been reported when it ran.
    final class Bookkeeping: Step {
        let sink: RecordingSink
        let sawReport = Mutex<[Bool]>([])

        init(sink: RecordingSink) {
            self.sink = sink
        }

        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            // The report runs beside this step: give it up to 2 s to show up.
            let deadline = ContinuousClock.now + .seconds(2)
            while sink.recorded.isEmpty, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(5)) }
            let reported = !sink.recorded.isEmpty
            sawReport.withLock { $0.append(reported) }
            return .next
        }
    }

    /// A worker with the steps claim, send (irreversible), `bookkeeping`, running on a scripted source.
    private func start(sink: RecordingSink, bookkeeping: Bookkeeping, undo: Fixtures.UndoLog) -> (ScriptedSource, PipelineWorker, Task<Void, any Error>) {
        start(sink: sink, steps: [
            ExecutorTests.bound("claim", Fixtures.Recorder(outcome: { _ in .next }, undone: undo)),
            ExecutorTests.bound("send", Fixtures.Recorder(outcome: { _ in .next }, undone: undo), irreversible: true),
            ExecutorTests.bound("mark", bookkeeping),
        ])
    }

    private func start(sink: RecordingSink, steps: [BoundStep], longestInMemory: Duration? = .seconds(300), source: ScriptedSource = ScriptedSource(),
                       drainTimeout: Duration = WorkerConfiguration.drainTimeoutSetting.defaultValue,
                       provider: (PipelineExecutor) -> any PipelineProvider = { FixedPipeline($0) }) -> (ScriptedSource, PipelineWorker, Task<Void, any Error>) {
        let logger = Logger(label: "test")
        var configuration = WorkerConfiguration(concurrency: 2, drainTimeout: drainTimeout)
        configuration.longestInMemory = longestInMemory
        let flow = FlowControl(logger: logger)
        let executor = PipelineExecutor(pipelineName: "t", steps: steps, worker: configuration, workerID: "w", flow: flow, logger: logger)
        let worker = PipelineWorker(source: source, pipelines: provider(executor), configuration: configuration, flow: flow, sink: sink,
                                    reportRetry: EscalationPolicy(first: .milliseconds(20), factor: 2, cap: .milliseconds(80)), logger: logger)
        return (source, worker, Task { try await worker.run() })
    }

    static func poll(_ condition: () -> Bool) async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while !condition(), ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(2)) }
    }

    /// Delivers one message and returns the source once it is settled and the worker stopped.
    private func run(sink: RecordingSink, bookkeeping: Bookkeeping, undo: Fixtures.UndoLog) async throws -> ScriptedSource {
        let (source, worker, task) = start(sink: sink, bookkeeping: bookkeeping, undo: undo)
        source.deliver(#"{"internalId":"a"}"#)
        try await Self.poll { !source.settlements.isEmpty }
        worker.beginShutdown()
        try await task.value
        return source
    }

    @Test func theOutcomeOfASentMessageIsReportedWhileTheStepsAfterTheSendRun() async throws {
        let sink = RecordingSink()
        let bookkeeping = Bookkeeping(sink: sink)
        let undo = Fixtures.UndoLog()
        let source = try await run(sink: sink, bookkeeping: bookkeeping, undo: undo)
        #expect(bookkeeping.sawReport.withLock { $0 } == [true], "the outcome is reported beside the steps after the send, not after them")
        #expect(sink.recorded.map(\.decision) == [.ack(.completed)])
        #expect(sink.recorded.first?.sent == true)
        #expect(source.settlements == [.ack], "acknowledged once both are done")
        #expect(undo.all.isEmpty)
    }

    @Test func aRefusedOutcomeIsReportedAgainWhileTheWorkerKeepsTheDelivery() async throws {
        let sink = RecordingSink(refusals: 3)
        let bookkeeping = Bookkeeping(sink: sink)
        let undo = Fixtures.UndoLog()
        let source = try await run(sink: sink, bookkeeping: bookkeeping, undo: undo)
        #expect(sink.recorded.count == 4, "refused three times, then taken")
        #expect(source.settlements == [.ack], "never back to the source while the sink refuses (each return would count toward a delivery limit)")
        #expect(undo.all.isEmpty)
    }

    @Test func aMessageWhoseOutcomeIsStillRefusedAtShutdownGoesBackWithItsClaimKept() async throws {
        let sink = RecordingSink(refusals: .max)
        let bookkeeping = Bookkeeping(sink: sink)
        let undo = Fixtures.UndoLog()
        let (source, worker, task) = start(sink: sink, bookkeeping: bookkeeping, undo: undo)
        source.deliver(#"{"internalId":"a"}"#)
        try await Self.poll { sink.recorded.count >= 3 && worker.unreportedOutcomes?.count == 1 }
        #expect(source.settlements.isEmpty, "held while its outcome is reported again")
        #expect(worker.unreportedOutcomes?.count == 1)
        worker.beginShutdown()
        try await task.value
        #expect(bookkeeping.sawReport.withLock { $0.count } == 1, "the steps after the send ran once")
        #expect(source.settlements == [.release], "not acknowledged without its event")
        #expect(undo.all.isEmpty, "sent: the claim stays, so the next delivery reports a duplicate instead of sending again")
        #expect(worker.unreportedOutcomes == nil)
    }

    /// A source that cannot hold a delivery while its outcome is refused (the statuses webhook,
    /// answered 503) hands it back at once: /health said ok throughout an outage of the events
    /// broker, Meta retrying for days (audit). Its refusals show for a while after the last.
    @Test func refusedOutcomesOfASourceThatHandsDeliveriesBackShowOnHealth() async throws {
        let sink = RecordingSink(refusals: .max)
        let (source, worker, task) = start(sink: sink, steps: [ExecutorTests.bound("claim", Fixtures.Recorder(outcome: { _ in .next }, undone: Fixtures.UndoLog()))],
                                           source: ScriptedSource(handsBack: true))
        source.deliver(#"{"internalId":"a"}"#)
        try await Self.poll { !source.settlements.isEmpty }
        let shown = try #require(worker.unreportedOutcomes, "an outcome refused a moment ago")
        #expect(shown.count == 0, "none held: handed back")
        worker.beginShutdown()
        try await task.value
    }

    /// A step that runs until it is cancelled (a message the drain must requeue), having noted `notes` in what the message carries.
    final class Endless: Step {
        let started = Mutex(false)
        let notes: [String: String]

        init(noting notes: [String: String] = [:]) {
            self.notes = notes
        }

        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            message.carried.merge(notes) { $1 }
            started.withLock { $0 = true }
            try await Task.sleep(for: .seconds(600))
            return .next
        }
    }

    /// Requeued at the drain's end, the message went back as a plain release, which brings the
    /// original back as it was: what the run noted — the idempotency step's note that it claimed its
    /// key — was lost, and a retry that met that claim, unreleased, took it for a copy in flight (review).
    @Test func aMessageRequeuedAtTheDrainsEndKeepsWhatItsRunNoted() async throws {
        let step = Endless(noting: ["claimed": "1"])
        let (source, worker, task) = start(sink: RecordingSink(), steps: [ExecutorTests.bound("endless", step)], drainTimeout: .milliseconds(500))
        source.deliver(#"{"internalId":"a"}"#)
        try await Self.poll { step.started.withLock { $0 } }
        worker.beginShutdown()
        try await task.value
        guard case .redeliver(_, let attemptsMade, let carried, _)? = source.settlements.first, source.settlements.count == 1 else {
            Issue.record("back with what it carries, not as the original: \(source.settlements)")
            return
        }
        #expect(carried == ["claimed": "1"])
        #expect(attemptsMade == 0, "a requeue uses up no attempt")
    }

    @Test func theDrainRunsFromShutdownNotFromWhenTheSourceConfirmsItsIntakeStopped() async throws {
        let step = Endless()
        let (source, worker, task) = start(sink: RecordingSink(), steps: [ExecutorTests.bound("endless", step)], source: ScriptedSource(slowToStop: true),
                                           drainTimeout: .seconds(2))
        source.deliver(#"{"internalId":"a"}"#)
        try await Self.poll { step.started.withLock { $0 } }
        worker.beginShutdown()
        // The broker answers the consumer's cancel only after the drain's time has passed.
        try await Task.sleep(for: .seconds(3))
        #expect(source.settlements.isEmpty, "in flight until the source confirms its intake stopped")
        let confirmed = ContinuousClock.now
        source.confirmIntakeStopped()
        try await task.value
        #expect(source.settlements == [.release], "requeued at the drain's end")
        #expect(ContinuousClock.now - confirmed < .seconds(1), "the drain had run its 2 s since shutdown: no second drain after the confirm (\(ContinuousClock.now - confirmed))")
    }

    @Test func theDeliveryIsAcknowledgedOnlyOnceItsEventIsConfirmed() async throws {
        let sink = RecordingSink(held: true)
        let bookkeeping = Bookkeeping(sink: sink)
        let (source, worker, task) = start(sink: sink, bookkeeping: bookkeeping, undo: Fixtures.UndoLog())
        source.deliver(#"{"internalId":"b"}"#)
        try await Self.poll { bookkeeping.sawReport.withLock { !$0.isEmpty } }
        // The steps after the send are done and the report started, but it is not confirmed:
        // an ack now would lose the event. Give a wrong ack time to happen.
        try await Task.sleep(for: .milliseconds(200))
        #expect(source.settlements.isEmpty, "settled before the event was confirmed")
        sink.release()
        try await Self.poll { !source.settlements.isEmpty }
        #expect(source.settlements == [.ack])
        worker.beginShutdown()
        try await task.value
    }

    /// Holds the message for `heldFor` once it passes, like an idempotency claim with its lease.
    /// Delivers `body`, stops the worker once it is settled, and returns the delay it went round
    /// the source with (nil: settled otherwise, or not within 10 s).
    private func redelivery(of body: String, _ source: ScriptedSource, _ worker: PipelineWorker, _ task: Task<Void, any Error>) async throws -> Duration? {
        source.deliver(body)
        try await Self.poll { !source.settlements.isEmpty }
        worker.beginShutdown()
        try await task.value
        guard case .redeliver(let after, _, _, _)? = source.settlements.first else { return nil }
        return after
    }

    struct Claim: Step {
        let heldFor: Duration?
        let undone: Fixtures.UndoLog
        /// false: the store does not answer (the claim may stand there all the same).
        var answered = true

        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            guard answered else { throw StepFailure(.unavailable, "store: no answer") }
            return .next
        }
        func undo(_ message: Message, _ context: StepContext) async { undone.append(context.stepName) }
    }

    /// Asks the message to wait 100 ms, `times` times, then lets it go on (a pacer that keeps
    /// telling it to wait once more: others take the slots it waited for).
    final class RepeatedWait: Step {
        let times: Int
        let each: Duration
        let waits = Mutex(0)

        init(times: Int, each: Duration = .milliseconds(100)) {
            self.times = times
            self.each = each
        }

        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            let waitAgain = waits.withLock { count in
                defer { count += 1 }
                return count < times
            }
            return waitAgain ? .wait(Wait(key: "pacing", until: context.clock.now().addingTimeInterval(each.secondsDouble), reason: .throughput)) : .next
        }
    }

    /// Waits that add up past what the claim is held for would let another worker's copy take the
    /// claim over while this one still sends it (sent twice): the message stays in memory only
    /// while its waits end within the claim's `heldFor` less a quarter (375 of 500 ms), then goes
    /// round the source with the claim given back.
    @Test func aMessageWaitsInMemoryOnlyWhileItsClaimLasts() async throws {
        let undo = Fixtures.UndoLog()
        let pacing = RepeatedWait(times: 6)
        let sends = Fixtures.UndoLog()
        let throughSource = TestMetricsSystem.counter("outbound_waits_through_source_total", [("reason", "throughput")])
        let (source, worker, task) = start(sink: RecordingSink(), steps: [
            ExecutorTests.bound("claim", Claim(heldFor: .milliseconds(500), undone: undo)),
            ExecutorTests.bound("pacing", pacing),
            ExecutorTests.bound("send", Fixtures.Recorder(outcome: { _ in sends.append("send"); return .next }, undone: nil), irreversible: true),
        ])
        guard let after = try await redelivery(of: #"{"internalId":"c"}"#, source, worker, task) else {
            Issue.record("kept in memory for 6 waits of 100 ms past the claim's 375 ms: \(source.settlements)")
            return
        }
        #expect(after == .seconds(PipelineWorker.shortestTrip), "round for the shortest trip, not the 100 ms left of its wait (SPEC 11: no tiny expiration): \(after)")
        #expect(sends.all.isEmpty, "not sent while its claim could have run out")
        #expect(undo.all == ["claim"], "the claim given back as it goes round")
        #expect((3...4).contains(pacing.waits.withLock { $0 }), "waited in memory while the claim lasted: \(pacing.waits.withLock { $0 })")
        #expect(TestMetricsSystem.counter("outbound_waits_through_source_total", [("reason", "throughput")]) > throughSource, "the trip through the source counted")
    }

    /// Under `fail_open` a message goes on when its claim is not answered — a claim that may stand in
    /// the store all the same, with its lease; it then waited in memory for as long as pacing asked,
    /// past that lease, when another worker's copy could take the claim over and send (review).
    @Test func aMessageWhoseClaimWentUnansweredWaitsInMemoryOnlyWhileAClaimWouldLast() async throws {
        let pacing = RepeatedWait(times: 6)
        let sends = Fixtures.UndoLog()
        let (source, worker, task) = start(sink: RecordingSink(), steps: [
            ExecutorTests.bound("claim", Claim(heldFor: .milliseconds(500), undone: Fixtures.UndoLog(), answered: false), degradation: .failOpen),
            ExecutorTests.bound("pacing", pacing),
            ExecutorTests.bound("send", Fixtures.Recorder(outcome: { _ in sends.append("send"); return .next }, undone: nil), irreversible: true),
        ])
        guard try await redelivery(of: #"{"internalId":"u"}"#, source, worker, task) != nil else {
            Issue.record("kept in memory for 6 waits of 100 ms past a claim's 375 ms: \(source.settlements)")
            return
        }
        #expect(sends.all.isEmpty, "not sent after its claim could have run out")
    }

    /// A pipeline a test replaces, as a reload does.
    final class ReplaceablePipeline: PipelineProvider {
        private let current: Mutex<(executor: PipelineExecutor, generation: Int)>

        init(_ executor: PipelineExecutor) {
            current = Mutex((executor, 0))
        }

        func replace(with executor: PipelineExecutor) {
            current.withLock { $0 = (executor, $0.generation + 1) }
        }

        func checkout() -> CheckedOutPipeline {
            let (executor, generation) = current.withLock { $0 }
            return CheckedOutPipeline(executor: executor, isReplaced: { self.current.withLock { $0.generation } != generation })
        }
    }

    /// A message waiting in memory kept the pipeline a reload had replaced — the SIGHUP that fixes a
    /// bad token — and went on with it when its wait ended: a request with the old token, a 190, and
    /// every message paused again (review). It now goes round the source, to run on the new pipeline.
    @Test func aMessageWaitingWhenItsPipelineIsReplacedRunsOnTheNewOne() async throws {
        let pacing = RepeatedWait(times: 1, each: .seconds(1))
        let oldSends = Fixtures.UndoLog()
        let undo = Fixtures.UndoLog()
        let replaceable = Mutex<ReplaceablePipeline?>(nil)
        let (source, worker, task) = start(sink: RecordingSink(), steps: [
            ExecutorTests.bound("claim", Claim(heldFor: nil, undone: undo)),
            ExecutorTests.bound("pacing", pacing),
            ExecutorTests.bound("send", Fixtures.Recorder(outcome: { _ in oldSends.append("send"); return .next }, undone: nil), irreversible: true),
        ]) { executor in
            let provider = ReplaceablePipeline(executor)
            replaceable.withLock { $0 = provider }
            return provider
        }
        source.deliver(#"{"internalId":"r"}"#)
        try await Self.poll { pacing.waits.withLock { $0 } == 1 }
        let replacement = ExecutorTests.pipeline([ExecutorTests.bound("send", Fixtures.Recorder(outcome: { _ in .next }, undone: nil), irreversible: true)])
        try #require(replaceable.withLock { $0 }).replace(with: replacement)
        try await Self.poll { !source.settlements.isEmpty }
        worker.beginShutdown()
        try await task.value
        guard case .redeliver(let after, _, _, _)? = source.settlements.first else {
            Issue.record("round the source to the new pipeline: \(source.settlements)")
            return
        }
        #expect(after == .seconds(PipelineWorker.shortestTrip))
        #expect(oldSends.all.isEmpty, "nothing sent on the replaced pipeline")
        #expect(undo.all == ["claim"], "what the old run held is given back")
    }

    /// A step that notes in what the message carries that it claimed its key, as the idempotency step does.
    struct NotingClaim: Step {
        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            message.carried["claimed"] = "1"
            return .next
        }
    }

    /// A sent message whose outcome is still refused at shutdown went back as a copy carrying the
    /// note that it claimed its key (review of 07aadbb): with its completion not recorded, that copy
    /// was never taken for a duplicate in flight, and after the lease it was taken over and sent again.
    /// Sent, it goes back as it came.
    @Test func aSentMessageWhoseOutcomeIsStillRefusedAtShutdownGoesBackAsItCame() async throws {
        let sink = RecordingSink(refusals: .max)
        let (source, worker, task) = start(sink: sink, steps: [
            ExecutorTests.bound("claim", NotingClaim()),
            ExecutorTests.bound("send", Fixtures.Recorder(outcome: { _ in .next }, undone: nil), irreversible: true),
        ])
        source.deliver(#"{"internalId":"s"}"#)
        try await Self.poll { sink.recorded.count >= 2 }
        worker.beginShutdown()
        try await task.value
        #expect(source.settlements == [.release], "not a copy with the note: \(source.settlements)")
    }

    /// Waits for what another worker may lift early (a paused template): 60 s away, looking again
    /// every `look` (by default 2 s: far longer than 7 deliveries take to arrive and park), until
    /// `lift()`; counts the looks by message.
    final class LiftedWait: Step {
        let looks = Mutex<[String: Int]>([:])
        private let lifted = Mutex(false)
        private let look: Duration

        init(look: Duration = .seconds(2)) {
            self.look = look
        }

        func lift() { lifted.withLock { $0 = true } }

        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            looks.withLock { $0[message.internalID ?? "", default: 0] += 1 }
            if lifted.withLock({ $0 }) { return .next }
            return .wait(Wait(key: "template:t:en", until: context.clock.now().addingTimeInterval(60), reason: .templatePaused, looksAgainAfter: look))
        }
    }

    /// A wait far beyond `max_park` (10 s) that looks again stays parked in memory and goes through
    /// its step again at each look (SPEC 15: an approval is followed within 10 s), while the one
    /// that parking cannot take (6 places: capacity 8 less concurrency 2) goes round the source for
    /// the whole wait — one broker round trip, not one per look.
    @Test func aWaitThatLooksAgainStaysInMemoryWhileParkingHasRoom() async throws {
        let step = LiftedWait()
        let (source, worker, task) = start(sink: RecordingSink(), steps: [ExecutorTests.bound("template", step)])
        for number in 1...7 { source.deliver(#"{"internalId":"m\#(number)"}"#) }
        try await Self.poll { !source.settlements.isEmpty }
        step.lift()
        try await Self.poll { source.settlements.count == 7 }
        worker.beginShutdown()
        try await task.value
        let acknowledged = source.settlements.filter { if case .ack = $0 { true } else { false } }
        let away = source.settlements.compactMap { settlement -> Duration? in
            if case .redeliver(let after, _, _, _) = settlement { after } else { nil }
        }
        #expect(acknowledged.count == 6, "the parked ones went on once the wait was lifted: \(source.settlements)")
        #expect(away.count == 1, "the one parking had no room for went round the source: \(source.settlements)")
        #expect(away.allSatisfy { $0 > .seconds(50) }, "for the whole wait, not a look: \(away)")
        let looks = step.looks.withLock { $0.values.sorted() }
        #expect(looks.first == 1 && looks.dropFirst().allSatisfy { $0 >= 2 }, "the parked ones looked again in memory: \(looks)")
    }

    /// Waits `wait` once per message, then lets it go on.
    final class WaitOnce: Step {
        private let waited = Mutex<Set<String>>([])
        private let wait: Duration

        init(_ wait: Duration) {
            self.wait = wait
        }

        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            guard waited.withLock({ $0.insert(message.internalID ?? "").inserted }) else { return .next }
            return .wait(Wait(key: "pair", until: context.clock.now().addingTimeInterval(wait.secondsDouble), reason: .pairHold))
        }
    }

    /// SPEC 11: a wait shorter than `max_park` never goes round the broker with a tiny expiration.
    /// The message parking has no room for (6 places: capacity 8 less concurrency 2) with 0.6 s to
    /// wait goes round for the shortest trip, 1 s; before, for its wait less the half second it
    /// comes back early: a 0.1 s expiration.
    @Test func aWaitBeyondParkingGoesRoundForAtLeastASecond() async throws {
        let (source, worker, task) = start(sink: RecordingSink(), steps: [ExecutorTests.bound("pair", WaitOnce(.milliseconds(600)))])
        for number in 1...7 { source.deliver(#"{"internalId":"s\#(number)"}"#) }
        try await Self.poll { source.settlements.count == 7 }
        worker.beginShutdown()
        try await task.value
        let away = source.settlements.compactMap { settlement -> Duration? in
            if case .redeliver(let after, _, _, _) = settlement { after } else { nil }
        }
        #expect(away == [.seconds(PipelineWorker.shortestTrip)], "the one parking had no room for, round for 1 s: \(source.settlements)")
    }

    /// A wait that looks again (every second) stays in memory only while the message's claim lasts
    /// (less its last second: 3 of 4 s), or — holding no claim — until the delivery has been with
    /// the worker `longestInMemory` (2.5 s); then it goes round the source for one look, not for the
    /// whole wait (an approval is still followed within seconds). Without the limit a message with
    /// no claim stayed for the whole pause, past RabbitMQ's consumer timeout.
    @Test(arguments: [true, false])
    func aWaitThatLooksAgainLeavesMemoryForOneLookOnceItHasStayedLongEnough(claimed: Bool) async throws {
        let step = LiftedWait(look: .seconds(1))
        let undo = Fixtures.UndoLog()
        let claim = ExecutorTests.bound("claim", Claim(heldFor: .seconds(4), undone: undo))
        let (source, worker, task) = start(sink: RecordingSink(), steps: (claimed ? [claim] : []) + [ExecutorTests.bound("template", step)],
                                           longestInMemory: claimed ? .seconds(300) : .milliseconds(2500))
        guard let after = try await redelivery(of: #"{"internalId":"kept"}"#, source, worker, task) else {
            Issue.record("round the source once it had stayed long enough: \(source.settlements)")
            return
        }
        #expect(after <= .seconds(1), "back for its next look, not the 60 s wait: \(after)")
        #expect(step.looks.withLock { $0["kept", default: 0] } >= 2, "looked again in memory until then")
        #expect(undo.all == (claimed ? ["claim"] : []), "a claim given back as it goes round")
    }
}
