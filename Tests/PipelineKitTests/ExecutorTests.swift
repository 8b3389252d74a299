import Foundation
import Logging
import PipelineKit
import Synchronization
import Testing

@Suite struct ExecutorTests {
    static let worker = WorkerConfiguration(pause: .seconds(5), retry: RetryPolicy(maxAttempts: 3, backoff: [.seconds(1), .seconds(5)]))
    static let location = SourceLocation(file: "t", line: 1, column: 1)

    static func bound(_ name: String, _ step: any Step, onError: ErrorPolicy = .deadLetter, degradation: DegradationPolicy = .failClosed, irreversible: Bool = false) -> BoundStep {
        BoundStep(definition: StepDefinition(name: name, uses: name, settings: Settings(), onError: onError, degradation: degradation, location: location), step: step, irreversible: irreversible)
    }

    static func pipeline(_ steps: [BoundStep], clock: any WallClock = SystemWallClock(), logger: Logger = Logger(label: "test")) -> PipelineExecutor {
        PipelineExecutor(pipelineName: "t", steps: steps, worker: worker, workerID: "w", clock: clock, flow: FlowControl(clock: clock, logger: logger), logger: logger)
    }

    private func executor(_ steps: [(String, ErrorPolicy, DegradationPolicy, Bool, @Sendable (Message) throws -> StepOutcome)], undo: Fixtures.UndoLog = Fixtures.UndoLog()) -> PipelineExecutor {
        Self.pipeline(steps.map { name, onError, degradation, irreversible, outcome in
            Self.bound(name, Fixtures.Recorder(outcome: outcome, undone: undo), onError: onError, degradation: degradation, irreversible: irreversible)
        })
    }

    private func run(_ executor: PipelineExecutor, attempt: Int = 1) async -> Decision {
        var message = Message(body: Array(#"{"internalId":"a"}"#.utf8), attempt: attempt)
        return await executor.decision(for: &message)
    }

    @Test func allStepsPassedIsCompleted() async {
        let decision = await run(executor([("a", .deadLetter, .failClosed, false, { _ in .next }), ("b", .deadLetter, .failClosed, false, { _ in .next })]))
        #expect(decision == .ack(.completed))
    }

    @Test func finishStopsAndAcknowledges() async {
        let decision = await run(executor([("dedup", .deadLetter, .failClosed, false, { _ in .finish(as: .duplicate, "duplicate") }), ("send", .retry, .failClosed, true, { _ in Issue.record("ran after finish"); return .next })]))
        #expect(decision == .ack(.finished(step: "dedup", label: .duplicate, reason: "duplicate")))
    }

    @Test func aStepsOwnLabelNamesTheOutcome() async {
        let decision = await run(executor([("check", .deadLetter, .failClosed, false, { _ in .finish(as: "suppressed", "opted out") }), ("send", .retry, .failClosed, true, { _ in Issue.record("ran after finish"); return .next })]))
        #expect(decision == .ack(.finished(step: "check", label: "suppressed", reason: "opted out")))
        #expect(decision.outcomeName == "suppressed")
        #expect(decision.isFinished)
    }

    @Test func requeueWithoutDelayUsesTheFirstBackoffAndUndoes() async {
        let undo = Fixtures.UndoLog()
        let decision = await run(executor([("claim", .deadLetter, .failClosed, false, { _ in .next }), ("wait", .deadLetter, .failClosed, false, { _ in .requeue(after: nil, reason: "in flight") })], undo: undo))
        #expect(decision == .requeue(after: .seconds(1), step: "wait", reason: "in flight", pause: nil))
        #expect(undo.all == ["claim"])
    }

    @Test(arguments: [
        (StepFailure.Kind.invalid, ErrorPolicy.deadLetter, "dead_letter"),
        (.invalid, .retry, "dead_letter"),
        (.invalid, .drop, "dropped"),
        (.permanent, .deadLetter, "dead_letter"),
        (.permanent, .retry, "dead_letter"),
        (.permanent, .drop, "dropped"),
        (.transient, .deadLetter, "dead_letter"),
        (.transient, .retry, "retry"),
        (.transient, .drop, "dropped"),
        (.senderSide, .deadLetter, "requeue"),
        (.senderSide, .retry, "requeue"),
        (.senderSide, .drop, "requeue"),
    ])
    func failureKindsAgainstErrorPolicies(kind: StepFailure.Kind, policy: ErrorPolicy, outcome: String) async {
        let undo = Fixtures.UndoLog()
        let decision = await run(executor([("claim", .deadLetter, .failClosed, false, { _ in .next }), ("s", policy, .failClosed, false, { _ in throw StepFailure(kind, "boom") })], undo: undo))
        #expect(decision.outcomeName == outcome)
        #expect(decision.reason?.contains("boom") == true)
        #expect(undo.all == ["claim"], "a failure must release what earlier steps claimed")
        if kind == .senderSide, case .requeue(_, _, _, let pause) = decision { #expect(pause?.coversAll == true) }
    }

    @Test(arguments: [(DegradationPolicy.failOpen, "completed"), (.failClosed, "requeue")])
    func unavailableResourceFollowsDegradation(policy: DegradationPolicy, outcome: String) async {
        let decision = await run(executor([("dedup", .deadLetter, policy, false, { _ in throw StepFailure(.unavailable, "redis down") }), ("send", .retry, .failClosed, true, { _ in .next })]))
        #expect(decision.outcomeName == outcome)
        if case .requeue(let after, _, _, let pause) = decision {
            #expect(after == .seconds(1))
            #expect(pause == nil)
        }
    }

    @Test func retryScheduleAndGivingUp() async {
        let failing = executor([("send", .retry, .failClosed, true, { _ in throw StepFailure(.transient, "503") })])
        #expect(await run(failing, attempt: 1) == .retry(after: .seconds(1), attempt: 2, Failure(step: "send", reason: "503")))
        #expect(await run(failing, attempt: 2) == .retry(after: .seconds(5), attempt: 3, Failure(step: "send", reason: "503")))
        #expect(await run(failing, attempt: 3) == .deadLetter(Failure(step: "send", reason: "gave up after 3 attempts: 503")))
    }

    @Test func retryAfterExtendsTheDelay() async {
        let limited = executor([("send", .retry, .failClosed, true, { _ in throw StepFailure(.transient, "pair limit", retryAfter: .seconds(16)) })])
        #expect(await run(limited) == .retry(after: .seconds(16), attempt: 2, Failure(step: "send", reason: "pair limit")))
    }

    @Test func failureAfterAnIrreversibleStepIsAcknowledgedNotRetried() async {
        let undo = Fixtures.UndoLog()
        let decision = await run(executor([
            ("claim", .deadLetter, .failClosed, false, { _ in .next }),
            ("send", .retry, .failClosed, true, { _ in .next }),
            ("mark", .deadLetter, .failClosed, false, { _ in throw StepFailure(.unavailable, "redis down") }),
        ], undo: undo))
        #expect(decision == .ack(.completed))
        #expect(undo.all.isEmpty, "the key must not be released after the message was sent")
    }

    @Test(arguments: [StepOutcome.requeue(after: nil, reason: "in flight"), .wait(Wait(key: "k", until: Date().addingTimeInterval(5), reason: .throughput)), .finish(as: "skipped", "nothing to do")])
    func aStepAfterTheSendCannotSendItAgain(outcome: StepOutcome) async {
        let undo = Fixtures.UndoLog()
        let decision = await run(executor([
            ("claim", .deadLetter, .failClosed, false, { _ in .next }),
            ("send", .retry, .failClosed, true, { _ in .next }),
            ("late", .deadLetter, .failClosed, false, { _ in outcome }),
        ], undo: undo))
        #expect(decision == .ack(.completed))
        let waited = if case .wait = outcome { true } else { false }
        #expect(undo.all == (waited ? ["late"] : []), "the key must not be released after the message was sent; a refused wait gives back only its own reservation")
    }

    @Test func advanceStopsAfterTheSendOnlyWhenStepsRemain() async {
        typealias Spec = (String, ErrorPolicy, DegradationPolicy, Bool, @Sendable (Message) throws -> StepOutcome)
        let steps: [Spec] = [("claim", .deadLetter, .failClosed, false, { _ in .next }), ("send", .retry, .failClosed, true, { _ in .next })]
        let mark: Spec = ("mark", .deadLetter, .failClosed, false, { _ in .next })
        var run = PipelineRun(Message(body: Array(#"{"internalId":"s"}"#.utf8)))
        let withBookkeeping = executor(steps + [mark])
        #expect(await withBookkeeping.advance(&run) == .sent)
        #expect(run.sent)
        #expect(await withBookkeeping.advance(&run) == .decided(.ack(.completed)))
        var last = PipelineRun(Message(body: Array(#"{"internalId":"t"}"#.utf8)))
        #expect(await executor(steps).advance(&last) == .decided(.ack(.completed)), "nothing after the send: decided at once")
    }

    /// A step that waits until its task is cancelled.
    struct WaitForever: Step {
        let started: Fixtures.UndoLog
        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            started.append(context.stepName)
            try await Task.sleep(for: .seconds(600))
            return .next
        }
    }

    @Test func cancellationRequeuesAndReleases() async throws {
        let undo = Fixtures.UndoLog()
        let started = Fixtures.UndoLog()
        let executor = Self.pipeline([
            Self.bound("claim", Fixtures.Recorder(outcome: { _ in .next }, undone: undo)),
            Self.bound("slow", WaitForever(started: started), onError: .retry, degradation: .failOpen),
            Self.bound("send", Fixtures.Recorder(outcome: { _ in .next }, undone: nil), irreversible: true),
        ])
        let task = Task { await run(executor) }
        while started.all.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        let decision = await task.value
        #expect(decision == .requeue(after: .zero, step: "slow", reason: "worker shutting down", pause: nil))
        #expect(undo.all == ["claim"])
    }

    /// A send in progress when the worker's drain ends must not be cut off: the request may
    /// already have reached the other side, and releasing the key would let a restart send it again.
    @Test func anIrreversibleStepInProgressFinishesDespiteCancellation() async throws {
        let undo = Fixtures.UndoLog()
        let started = Fixtures.UndoLog()
        let executor = Self.pipeline([
            Self.bound("claim", Fixtures.Recorder(outcome: { _ in .next }, undone: undo)),
            Self.bound("send", SlowSend(started: started), onError: .retry, irreversible: true),
            Self.bound("mark", Fixtures.Recorder(outcome: { _ in .next }, undone: nil)),
        ])
        let task = Task { await run(executor) }
        while started.all.isEmpty { try await Task.sleep(for: .milliseconds(5)) }
        task.cancel()
        let decision = await task.value
        #expect(decision == .ack(.completed), "the send finished and the message is acknowledged")
        #expect(undo.all.isEmpty, "nothing released after the send")
    }

    /// A send that takes 200 ms and ignores nothing: it would throw on cancellation.
    struct SlowSend: Step {
        let started: Fixtures.UndoLog
        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            started.append(context.stepName)
            try await Task.sleep(for: .milliseconds(200))
            return .next
        }
    }

    @Test func aWaitResumesAtTheStepThatWaitedAndAbandonGivesBackItsClaim() async throws {
        let undo = Fixtures.UndoLog()
        let runs = Fixtures.UndoLog()
        let until = Date().addingTimeInterval(5)
        let executor = Self.pipeline([
            Self.bound("claim", Fixtures.Recorder(outcome: { _ in runs.append("claim"); return .next }, undone: undo)),
            Self.bound("pace", Fixtures.Recorder(outcome: { message in
                runs.append("pace")
                return runs.all.filter { $0 == "pace" }.count == 1 ? .wait(Wait(key: "sender", until: until, reason: .throughput)) : .next
            }, undone: undo)),
        ])
        var run = PipelineRun(Message(body: Array(#"{"internalId":"w"}"#.utf8)))
        #expect(await executor.advance(&run) == .waiting(Wait(key: "sender", until: until, reason: .throughput)))
        #expect(await executor.advance(&run) == .decided(.ack(.completed)))
        #expect(runs.all == ["claim", "pace", "pace"], "resumed at the waiting step, earlier ones not run again")
        #expect(run.waits.map(\.reason) == [.throughput])

        var abandoned = PipelineRun(Message(body: Array(#"{"internalId":"w2"}"#.utf8)))
        let other = Self.pipeline([
            Self.bound("claim", Fixtures.Recorder(outcome: { _ in .next }, undone: undo)),
            Self.bound("pace", Fixtures.Recorder(outcome: { _ in .wait(Wait(key: "sender", until: until, reason: .throughput)) }, undone: undo)),
        ])
        _ = await other.advance(&abandoned)
        await other.abandon(&abandoned)
        #expect(undo.all == ["pace", "claim"], "the waiting step gives back what it reserved, then the claim")
    }

    @Test func anExpiredMessageIsNotSentButDeadLetteredAsExpired() async {
        let undo = Fixtures.UndoLog()
        let executor = Self.pipeline([
            Self.bound("claim", Fixtures.Recorder(outcome: { _ in .next }, undone: undo)),
            Self.bound("send", Fixtures.Recorder(outcome: { _ in Issue.record("an expired message was sent"); return .next }, undone: nil), irreversible: true),
        ])
        var message = Message(body: Array(#"{"internalId":"old"}"#.utf8), notAfter: Date().addingTimeInterval(-1))
        let decision = await executor.decision(for: &message)
        #expect(decision.outcomeName == "expired")
        #expect(decision.stepName == "send")
        #expect(decision.reason?.hasPrefix("expired") == true)
        #expect(undo.all == ["claim"])
    }

    @Test func aSenderSideFailurePausesItsScopeAndCarriesTheCode() async {
        let clock = ManualWallClock()
        let executor = Self.pipeline([
            Self.bound("send", Fixtures.Recorder(outcome: { _ in
                throw StepFailure(.senderSide, "code 10", code: 10, pauseScope: PauseScope(key: "sender:42", coversAll: false))
            }, undone: nil), onError: .retry, irreversible: true),
        ], clock: clock)
        var message = Message(body: Array(#"{"internalId":"p"}"#.utf8))
        let decision = await executor.decision(for: &message)
        guard case .requeue(let after, _, _, let pause) = decision else {
            Issue.record("a sender-side failure waits: \(decision)")
            return
        }
        #expect(after == .seconds(5), "the first pause")
        #expect(pause == PauseScope(key: "sender:42", coversAll: false))
        #expect(executor.flow.holds.held("sender:42", at: clock.now()) != nil, "the scope is held for later messages")
        #expect(executor.flow.holds.held("sender:43", at: clock.now()) == nil)
        // A request that was under way when the pause began fails too: the same outage, the same pause.
        clock.advance(by: .seconds(1))
        var concurrent = Message(body: Array(#"{"internalId":"p2"}"#.utf8))
        #expect(Self.requeueDelay(await executor.decision(for: &concurrent)) == .seconds(4), "what is left of the first pause, not a longer one")
        // The probe after the pause fails: the pause doubles.
        clock.advance(by: .seconds(4))
        var probe = Message(body: Array(#"{"internalId":"p3"}"#.utf8))
        #expect(Self.requeueDelay(await executor.decision(for: &probe)) == .seconds(10), "pauses double while the failure lasts")
    }

    /// A token the Cloud API rejects (`190`): the message `slow` is held inside the step until `finish()`.
    final class TokenRejected: Step {
        let entered = Mutex(false)
        private let gate = AsyncStream<Void>.makeStream()

        func finish() { gate.continuation.finish() }

        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            if message.internalID == "slow" {
                entered.withLock { $0 = true }
                for await _ in gate.stream {}
            }
            throw StepFailure(.senderSide, "190", code: 190, pauseScope: PauseScope(key: "token:t", coversAll: false))
        }
    }

    /// A request under way when the pause began whose failure comes back after the pause ended is
    /// of the same outage: it does not double the next pause (the old code did, as if the probe had
    /// failed), and the next message probes.
    @Test func aSlowFailureFromBeforeAPauseDoesNotLengthenTheNext() async throws {
        let clock = ManualWallClock()
        let step = TokenRejected()
        let executor = Self.pipeline([Self.bound("send", step, irreversible: true)], clock: clock)
        let slow = Task {
            var message = Message(body: Array(#"{"internalId":"slow"}"#.utf8))
            return await executor.decision(for: &message)
        }
        try await WorkerTests.poll { step.entered.withLock { $0 } }
        var first = Message(body: Array(#"{"internalId":"first"}"#.utf8))
        #expect(Self.requeueDelay(await executor.decision(for: &first)) == .seconds(5))
        clock.advance(by: .seconds(6))
        step.finish()
        #expect(Self.requeueDelay(await slow.value) == .seconds(1), "the pause stays as it was, ended; back in a second (not returned to the queue at once)")
        #expect(executor.flow.holds.held("token:t", at: clock.now()) == nil, "the next message probes")
        var probe = Message(body: Array(#"{"internalId":"probe"}"#.utf8))
        #expect(Self.requeueDelay(await executor.decision(for: &probe)) == .seconds(10), "the probe's failure doubles it")
    }

    /// The delay of a requeue; nil for any other decision.
    static func requeueDelay(_ decision: Decision) -> Duration? {
        guard case .requeue(let after, _, _, _) = decision else { return nil }
        return after
    }

    @Test func stepsSkippedUnderFailOpenAreNotUndoneAndOthersAreUndoneLastFirst() async {
        let undo = Fixtures.UndoLog()
        let decision = await run(executor([
            ("first", .deadLetter, .failClosed, false, { _ in .next }),
            ("cache", .deadLetter, .failOpen, false, { _ in throw StepFailure(.unavailable, "down") }),
            ("second", .deadLetter, .failClosed, false, { _ in .next }),
            ("send", .deadLetter, .failClosed, false, { _ in throw StepFailure(.permanent, "rejected") }),
        ], undo: undo))
        #expect(decision == .deadLetter(Failure(step: "send", reason: "rejected")))
        #expect(undo.all == ["second", "first"])
    }

    @Test func logLinesCarryTheMessageAndTheStep() async {
        let capture = LogCapture()
        let logger = Logger(label: "test") { _ in CapturingHandler(capture: capture) }
        let executor = Self.pipeline(["validate", "send"].map { Self.bound($0, LoggingStep()) }, logger: logger)
        var message = Message(body: Array(#"{"internalId":"order-7"}"#.utf8))
        #expect(await executor.decision(for: &message) == .ack(.completed))
        let lines = capture.lines
        #expect(lines.map(\.message) == ["working", "working", "message completed"])
        #expect(lines.map { $0.metadata["step"]?.description } == ["validate", "send", "pipeline"])
        #expect(lines.allSatisfy { $0.metadata["internalId"]?.description == "order-7" })
        #expect(MessageLogContext.current == nil, "the context ends with the message")
    }

    @Test func messagesKeepParsedPayloadOrError() {
        #expect(Message(body: Array(#"{"internalId":"x"}"#.utf8)).internalID == "x")
        let broken = Message(body: [0xFF, 0xFE, 0x00])
        #expect(broken.payload == nil)
        #expect(broken.parseError?.contains("not valid JSON") == true)
        let deep = Message(body: Array((String(repeating: "[", count: 10_000) + String(repeating: "]", count: 10_000)).utf8))
        #expect(deep.payload == nil)
    }

    /// Holds the message's claim through a send in doubt (as the idempotency step does) and notes its undo.
    struct ClaimHolder: Step {
        let undone: Fixtures.UndoLog
        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome { .next }
        func holdInDoubt(_ message: inout Message, _ context: StepContext) async -> Bool { true }
        func undo(_ message: Message, _ context: StepContext) async { undone.append(context.stepName) }
    }

    /// A claim that failed under `fail_open` (the store down: the send went on without its key), then
    /// the send in doubt: the claim's step is still asked to hold the message, which waits for the
    /// outcome. It used to be left out as skipped, and the send was retried like a transient failure —
    /// a second copy of a message Meta may have accepted (seen as a duplicate in CI).
    @Test func aSendInDoubtWhoseClaimWasSkippedUnderFailOpenWaitsInsteadOfRetrying() async throws {
        struct UnreachableClaim: Step {
            func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome { throw StepFailure(.unavailable, "store down") }
            func holdInDoubt(_ message: inout Message, _ context: StepContext) async -> Bool { true }
        }
        let executor = Self.pipeline([
            Self.bound("claim", UnreachableClaim(), degradation: .failOpen),
            Self.bound("send", Fixtures.Recorder(outcome: { _ in throw StepFailure(.inDoubt, "answer lost") }, undone: nil), irreversible: true),
        ])
        var run = PipelineRun(Message(body: Array(#"{"internalId":"f"}"#.utf8)))
        let outcome = await executor.advance(&run)
        guard case .waiting(let wait) = outcome, wait.reason == .inDoubt else {
            Issue.record("a send in doubt without its claim waits for its outcome, never retried blindly: \(outcome)")
            return
        }
    }

    /// A step skipped under `fail_open` before a send in doubt runs again when the message goes on
    /// from the step holding its claim; when it passes then, it is undone like any step that passed
    /// (it used to stay marked skipped: what it took was never given back).
    @Test func aStepSkippedBeforeASendInDoubtIsUndoneWhenItPassesOnTheRunAgain() async throws {
        let undo = Fixtures.UndoLog()
        let cacheRuns = Mutex(0), sendRuns = Mutex(0)
        let executor = Self.pipeline([
            Self.bound("claim", ClaimHolder(undone: undo)),
            Self.bound("cache", Fixtures.Recorder(outcome: { _ in
                guard cacheRuns.withLock({ runs in runs += 1; return runs }) > 1 else { throw StepFailure(.unavailable, "down") }
                return .next
            }, undone: undo), degradation: .failOpen),
            Self.bound("send", Fixtures.Recorder(outcome: { _ in
                let first = sendRuns.withLock { runs in runs += 1; return runs == 1 }
                throw first ? StepFailure(.inDoubt, "answer lost") : StepFailure(.permanent, "refused")
            }, undone: nil), irreversible: true),
        ])
        var run = PipelineRun(Message(body: Array(#"{"internalId":"d"}"#.utf8)))
        guard case .waiting(let wait) = await executor.advance(&run), wait.reason == .inDoubt else {
            Issue.record("the send in doubt goes back to the claim's holder")
            return
        }
        guard case .decided(.deadLetter) = await executor.advance(&run) else {
            Issue.record("refused on the second try")
            return
        }
        #expect(undo.all == ["cache", "claim"], "what the steps took is given back, last first: \(undo.all)")
    }
}

/// A step that logs one line through its context.
private struct LoggingStep: Step {
    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        context.logger.info("working")
        return .next
    }
}

/// Log lines with the metadata they were written with, provider included.
private final class LogCapture: @unchecked Sendable {
    private let lock = NSLock()
    private var captured: [(message: String, metadata: Logger.Metadata)] = []
    func append(_ message: String, _ metadata: Logger.Metadata) { lock.withLock { captured.append((message, metadata)) } }
    var lines: [(message: String, metadata: Logger.Metadata)] { lock.withLock { captured } }
}

private struct CapturingHandler: LogHandler {
    let capture: LogCapture
    var logLevel: Logger.Level = .debug
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider? = MessageLogContext.metadataProvider

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let provided = metadataProvider?.get() ?? [:]
        capture.append(event.message.description, metadata.merging(provided) { $1 }.merging(event.metadata ?? [:]) { $1 })
    }
}
