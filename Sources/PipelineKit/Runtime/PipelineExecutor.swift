import Foundation
import Logging
import Metrics

/// A message on its way through the steps: where it is and what it has done so far.
public struct PipelineRun: Sendable {
    public var message: Message
    /// The next step to run.
    var next = 0
    /// Steps skipped under `fail_open` (nothing of theirs to undo).
    var skipped: [Int] = []
    /// The step that asked to wait and runs again next (it may hold something to give back).
    var waitingAt: Int?
    /// An irreversible step succeeded: nothing may send the message again.
    public private(set) var sent = false
    /// The steps' `reportedDefaults` were added (once a step passed: the message is valid enough).
    var defaultsReported = false
    /// Every wait so far, in order.
    public private(set) var waits: [Wait] = []
    /// What passed steps hold only for a time (`Step.heldFor`): the step and until when the
    /// message may wait in memory for it. Usually empty or one.
    private var holds: [(step: Int, keepUntil: Date)] = []

    /// The latest a wait of this run may end with the message kept in memory; nil: no limit.
    /// Beyond it, what a step holds for the message (its claim's lease) could run out while it waits.
    public var keepInMemoryUntil: Date? { holds.map(\.keepUntil).min() }

    public init(_ message: Message) {
        self.message = message
    }

    fileprivate mutating func passed(_ index: Int, irreversible: Bool, keepUntil: Date? = nil) {
        if irreversible { sent = true }
        if let keepUntil { holds.append((index, keepUntil)) }
        waitingAt = nil
        next = index + 1
    }

    /// A step found the message sent by an earlier attempt of its own (a send in doubt, settled).
    fileprivate mutating func settledAsSent() {
        sent = true
        waitingAt = nil
    }

    /// Runs again from `index` (a send in doubt goes back to the step holding its claim, which holds it differently now).
    fileprivate mutating func rewind(to index: Int) {
        next = index
        holds.removeAll { $0.step >= index }
        skipped.removeAll { $0 >= index }
    }

    fileprivate mutating func waiting(at index: Int, _ wait: Wait) {
        waitingAt = index
        waits.append(wait)
    }
}

/// Where a run stands after `advance`: decided, waiting for its turn, or sent with steps left.
public enum RunOutcome: Sendable, Equatable {
    case decided(Decision)
    case waiting(Wait)
    /// The irreversible step (the send) succeeded and steps remain. The outcome is decided —
    /// `.ack(.completed)`, whatever the steps after the send do — so the caller can report it now,
    /// while it calls `advance` again to run the rest.
    case sent
}

/// Runs a message through the steps in order and turns step outcomes and the policies
/// (`on_error`, `degradation`, retry, expiry, pauses) into one `Decision`. A step may ask to
/// wait: `advance` then returns `.waiting` and the caller (`PipelineWorker`, the one loop that
/// drives it, in production and in `outbound-worker test`) calls it again when the time comes,
/// or `abandon`s the run.
///
/// It does no I/O of its own: steps do, and the runtime carries out the decision.
public struct PipelineExecutor: Sendable {
    public let pipelineName: String
    public let steps: [BoundStep]
    public let worker: WorkerConfiguration
    public let workerID: String
    public let clock: any WallClock
    public let flow: FlowControl
    public let logger: Logger
    private let stepTimers: [Timer]
    /// `outbound_messages_total` by deciding step and outcome, made once (not per message).
    private let outcomeCounters: [String: [String: Counter]]
    /// `outbound_degraded_total` by step, made at start so the series exists at 0 (an alert on `increase` then sees the first).
    private let degradedCounters: [String: Counter]
    /// Every step's `reportedDefaults`, the first step's winning.
    private let reportedDefaults: [String: JSONValue]
    /// What the irreversible step says to do with a send in doubt (`StepContext.inDoubt`).
    public let inDoubtPolicy: InDoubtPolicy
    /// The step name of the runtime's own decisions (expiry, waits, drain) in metrics, logs and dead
    /// letters: no step of a pipeline may take it.
    public static let runtimeStepName = "pipeline"
    /// The spans of steps of a traced message.
    private let tracing = MessageTracing()

    public init(pipelineName: String, steps: [BoundStep], worker: WorkerConfiguration, workerID: String, clock: any WallClock = SystemWallClock(), flow: FlowControl, logger: Logger) {
        self.pipelineName = pipelineName
        self.steps = steps
        self.worker = worker
        self.workerID = workerID
        self.clock = clock
        self.flow = flow
        self.logger = logger
        self.stepTimers = steps.map { Timer(label: "outbound_step_duration_seconds", dimensions: [("step", $0.name)], preferredDisplayUnit: .seconds) }
        self.outcomeCounters = Dictionary(uniqueKeysWithValues: ([Self.runtimeStepName] + steps.map(\.name)).map { step in
            (step, Dictionary(Self.outcomeNames(of: steps).map { ($0, Counter(label: "outbound_messages_total", dimensions: [("step", step), ("outcome", $0)])) }) { first, _ in first })
        })
        self.degradedCounters = Dictionary(uniqueKeysWithValues: steps.map { ($0.name, Counter(label: "outbound_degraded_total", dimensions: [("step", $0.name)])) })
        self.reportedDefaults = steps.reduce(into: [:]) { defaults, bound in defaults.merge(bound.step.reportedDefaults) { first, _ in first } }
        self.inDoubtPolicy = steps.first { $0.irreversible }?.step.inDoubtPolicy ?? .standard
    }

    public var retry: RetryPolicy { worker.retry }

    /// The runtime's outcome names and the labels the steps may end a message with.
    static func outcomeNames(of steps: [BoundStep]) -> [String] {
        Decision.outcomeNames + steps.flatMap(\.outcomes).map(\.rawValue).filter { !Decision.outcomeNames.contains($0) }
    }

    /// Runs the steps from where `run` stands until a decision, a wait, or the send with steps
    /// left (`.sent`). An irreversible step runs to its end (its own timeout) even if the task is
    /// cancelled meanwhile: a send in progress when the worker's drain ends is never cut off.
    /// After the send, the outcome is `completed` whatever the later steps do: their failure is
    /// logged, a `finish` ends the run, and a `requeue` or `wait` — which would send it again —
    /// is refused with an error in the log.
    public func advance(_ run: inout PipelineRun) async -> RunOutcome {
        let logged = run.message.logContext
        while run.next < steps.count {
            let index = run.next
            let bound = steps[index]
            let context = self.context(index)
            if Task.isCancelled, !run.sent {
                await undo(&run, before: index)
                return decided(.requeue(after: .zero, step: bound.name, reason: "worker shutting down", pause: nil), logged)
            }
            if bound.irreversible, !run.sent, let notAfter = run.message.notAfter, clock.now() > notAfter {
                await undo(&run, before: index)
                return decided(.deadLetter(Failure(step: bound.name, reason: "expired: not sent by \(UTCTimestamp.format(notAfter))", expired: true)), logged)
            }
            let started = ContinuousClock.now
            // (Read before the step runs: what it holds may be counted from then on, and a pause the
            // send causes is of an outage that began before it did, or of a new one.)
            let began = bound.irreversible || bound.inMemoryWaitLimit != nil ? clock.now() : nil
            let keepUntil = bound.inMemoryWaitLimit.flatMap { limit in began.map { $0.addingTimeInterval(limit) } }
            do {
                let outcome = try await perform(bound, &run.message, context, logged: logged)
                stepTimers[index].recordInterval(since: started)
                switch outcome {
                case .next:
                    let sends = bound.irreversible && !run.sent
                    run.passed(index, irreversible: bound.irreversible, keepUntil: keepUntil)
                    if !run.defaultsReported { reportDefaults(&run) }
                    if sends, run.next < steps.count { return .sent }
                case .alreadySent:
                    run.settledAsSent()
                    return decided(.ack(.completed), logged)
                case .finish(let label, let reason):
                    return decided(.ack(run.sent ? .completed : .finished(step: bound.name, label: label, reason: reason)), logged)
                case .requeue(let after, let reason):
                    if run.sent { return refusedAfterSend("requeue", step: bound.name, logged) }
                    await undo(&run, before: index)
                    return decided(.requeue(after: after ?? retry.delay(beforeAttempt: 2), step: bound.name, reason: reason, pause: nil), logged)
                case .wait(let wait):
                    if run.sent {
                        // What the step reserved for its wait (a slot) is its own to give back; the claim stays.
                        await MessageLogContext.during(logged, step: bound.name) { await bound.step.undo(run.message, context) }
                        return refusedAfterSend("wait", step: bound.name, logged)
                    }
                    run.waiting(at: index, wait)
                    return .waiting(wait)
                }
            } catch {
                stepTimers[index].recordInterval(since: started)
                let failure = (error as? StepFailure) ?? StepFailure(.transient, String(describing: error))
                // In doubt comes first, even while the worker shuts down: a release would let it be sent again.
                if failure.kind == .inDoubt, !run.sent, let holder = await holdInDoubt(&run, before: index) {
                    let wait = Wait(key: "in_doubt", until: clock.now(), reason: .inDoubt)
                    run.rewind(to: holder)
                    run.waiting(at: holder, wait)
                    MessageLogContext.during(logged, step: bound.name) {
                        logger.warning("send in doubt: the request was written and its answer lost; waiting for a status to settle it", metadata: ["reason": .string(failure.reason)])
                    }
                    return .waiting(wait)
                }
                if Task.isCancelled, !run.sent {
                    await undo(&run, before: index)
                    return decided(.requeue(after: .zero, step: bound.name, reason: "worker shutting down", pause: nil), logged)
                }
                if run.sent {
                    MessageLogContext.during(logged, step: bound.name) {
                        logger.error("step failed after the message was sent; acknowledged so it is not sent twice", metadata: ["error": "\(failure)"])
                    }
                    Counter(label: "outbound_step_errors_total", dimensions: [("step", bound.name), ("kind", failure.kind.rawValue)]).increment()
                    return decided(.ack(.completed), logged)
                }
                if failure.kind == .unavailable, bound.definition.degradation == .failOpen {
                    degradedCounters[bound.name]?.increment()
                    MessageLogContext.during(logged, step: bound.name) {
                        logger.debug("resource unavailable; continuing (fail_open)", metadata: ["error": "\(failure.reason)"])
                    }
                    run.skipped.append(index)
                    // What the step may hold all the same (a claim made with its answer lost) bounds the waits in memory as if it passed.
                    run.passed(index, irreversible: false, keepUntil: keepUntil)
                    continue
                }
                if failure.kind == .inDoubt {
                    MessageLogContext.during(logged, step: bound.name) {
                        logger.error("send in doubt and no step holds the message's claim (no idempotency step?): retried like a transient failure", metadata: ["reason": .string(failure.reason)])
                    }
                }
                await undo(&run, before: index)
                return decided(pausing(decide(failure, step: bound, attempt: run.message.attempt), stepBegan: began), logged)
            }
        }
        return decided(.ack(.completed), logged)
    }

    /// Gives up a waiting run: undoes, last first, what its steps claimed (the waiting step's
    /// own reservation included). The message then goes back to the source.
    public func abandon(_ run: inout PipelineRun) async {
        await undo(&run, before: run.next)
    }

    /// The context step `index` runs in.
    private func context(_ index: Int) -> StepContext {
        StepContext(stepName: steps[index].name, logger: logger, workerID: workerID, clock: clock, flow: flow, inDoubt: inDoubtPolicy)
    }

    /// Asks the steps before `end`, last first, to hold the message's claim in doubt; the first step
    /// (lowest index) that holds it, nil when none does. Steps skipped under `fail_open` are asked
    /// too: one that could not claim (its store down) still must not let the send be retried as if
    /// it had not happened — it records the doubt without a claim, or waits until it can.
    private func holdInDoubt(_ run: inout PipelineRun, before end: Int) async -> Int? {
        var holder: Int?
        let logged = run.message.logContext
        for index in (0..<end).reversed() {
            let context = self.context(index)
            let holds = await MessageLogContext.during(logged, step: steps[index].name) {
                await steps[index].step.holdInDoubt(&run.message, context)
            }
            if holds { holder = index }
        }
        return holder
    }

    /// The message's outcome is durable (reported and acknowledged): tells the steps that passed, in order.
    public func settled(_ run: PipelineRun) async {
        let logged = run.message.logContext
        for index in 0..<min(run.next, steps.count) where !run.skipped.contains(index) {
            let context = self.context(index)
            await MessageLogContext.during(logged, step: steps[index].name) {
                await steps[index].step.settled(run.message, context)
            }
        }
    }

    /// The decision for a failure of `step` on delivery `attempt`, after any undo. Pure: a
    /// sender-side failure's decision names the scope to pause and its first length; `advance`
    /// pauses it (`pausing`), which knows how long this outage has lasted.
    public func decide(_ failure: StepFailure, step: BoundStep, attempt: Int) -> Decision {
        let name = step.name
        let reported = Failure(step: name, reason: failure.reason, code: failure.code, symbolicCode: failure.symbolicCode)
        switch failure.kind {
        case .unavailable:
            return .requeue(after: retry.delay(beforeAttempt: 2), step: name, reason: failure.reason, pause: nil)
        case .senderSide:
            let scope = failure.pauseScope ?? PauseScope(key: "pipeline:\(pipelineName)", coversAll: true)
            return .requeue(after: pausePolicy.first, step: name, reason: failure.reason, pause: scope)
        case .invalid, .permanent, .transient, .inDoubt:
            switch step.definition.onError {
            case .drop:
                return .ack(.dropped(reported))
            case .deadLetter:
                return .deadLetter(reported)
            case .retry:
                guard failure.kind == .transient || failure.kind == .inDoubt else { return .deadLetter(reported) }
                guard attempt < retry.maxAttempts else {
                    return .deadLetter(Failure(step: name, reason: "gave up after \(attempt) attempts: \(failure.reason)", code: failure.code))
                }
                let delay = max(retry.delay(beforeAttempt: attempt + 1), failure.retryAfter ?? .zero)
                return .retry(after: delay, attempt: attempt + 1, reported)
            }
        }
    }

    /// How long pauses last: `pause`, doubling while the failure lasts, at most 5 minutes.
    private var pausePolicy: EscalationPolicy {
        EscalationPolicy(first: worker.pause, factor: 2, cap: .seconds(300))
    }

    /// Holds the scope a decision pauses (`FlowControl.holds`, the one record of a pause: steps
    /// wait on it, and a scope that covers every message stops consumption while it lasts); the
    /// decision then waits as long as the hold: the next length of this outage, or what is left of it.
    /// A send that began before the last pause of the scope did fails for that outage: it does not lengthen the next.
    private func pausing(_ decision: Decision, stepBegan: Date?) -> Decision {
        guard case .requeue(_, let step, let reason, let scope?) = decision else { return decision }
        let pause = flow.holds.pause(scope, policy: pausePolicy, reason: reason, startedAt: stepBegan)
        // A failure of an outage whose pause has ended leaves it ended (no length): back in a second
        // through the delay queues, never returned to the queue at once (that counts as a delivery).
        return .requeue(after: max(pause.length, .seconds(1)), step: step, reason: reason, pause: scope)
    }

    /// Runs the step (in its own span when the message is traced).
    private func perform(_ bound: BoundStep, _ message: inout Message, _ context: StepContext, logged: MessageLogContext) async throws -> StepOutcome {
        guard let trace = message.trace, trace.isRecorded else { return try await performUntraced(bound, &message, context, logged: logged) }
        return try await tracing.step(bound.name, of: trace.context) { try await performUntraced(bound, &message, context, logged: logged) }
    }

    private func performUntraced(_ bound: BoundStep, _ message: inout Message, _ context: StepContext, logged: MessageLogContext) async throws -> StepOutcome {
        guard bound.irreversible else {
            return try await MessageLogContext.during(logged, step: bound.name) {
                try await bound.step.run(&message, context)
            }
        }
        // Not cancelled with the worker's task: a send that has started runs to its own timeout.
        // (An immediate task starts on this thread: no hop to another before the step's first await.)
        let start = message
        let step = bound.step
        let task = Task.immediate { () async -> (Message, Result<StepOutcome, any Error>) in
            var copy = start
            do {
                let outcome = try await MessageLogContext.during(logged, step: bound.name) { try await step.run(&copy, context) }
                return (copy, .success(outcome))
            } catch {
                // What the step noted before it failed (the sender it used) stays with the message.
                return (copy, .failure(error))
            }
        }
        let (finished, result) = await task.value
        message = finished
        return try result.get()
    }

    /// Undoes, last first, the steps before `end` that passed, and `end` itself when it is the step that waited.
    private func undo(_ run: inout PipelineRun, before end: Int) async {
        let last = run.waitingAt == end ? end : end - 1
        guard last >= 0 else { return }
        let logged = run.message.logContext
        for index in (0...last).reversed() where !run.skipped.contains(index) {
            let context = self.context(index)
            await MessageLogContext.during(logged, step: steps[index].name) {
                await steps[index].step.undo(run.message, context)
            }
        }
        run.waitingAt = nil
    }

    /// Adds the steps' `reportedDefaults` that no step reported itself.
    private func reportDefaults(_ run: inout PipelineRun) {
        run.defaultsReported = true
        let reported = run.message.reported
        for (name, value) in reportedDefaults where reported[name] == nil { run.message.report(name, value) }
    }

    /// A step after the send asked for what would send the message again: completed instead.
    private func refusedAfterSend(_ request: String, step: String, _ logged: MessageLogContext) -> RunOutcome {
        MessageLogContext.during(logged, step: step) {
            logger.error("step asked to \(request) after the message was sent; acknowledged so it is not sent twice")
        }
        return decided(.ack(.completed), logged)
    }

    private func decided(_ decision: Decision, _ logged: MessageLogContext) -> RunOutcome {
        MessageLogContext.during(logged, step: decision.stepName ?? Self.runtimeStepName) {
            record(decision)
        }
        return .decided(decision)
    }

    /// Counts and logs the decision (the task-local log context names the deciding step).
    private func record(_ decision: Decision) {
        let step = decision.stepName ?? Self.runtimeStepName
        (outcomeCounters[step]?[decision.outcomeName] ?? Counter(label: "outbound_messages_total", dimensions: [("step", step), ("outcome", decision.outcomeName)])).increment()
        switch decision {
        case .ack(.completed):
            logger.info("message completed")
        case .ack(.finished(_, _, let reason)):
            logger.info("message acknowledged without sending", metadata: ["reason": .string(reason)])
        case .ack(.dropped(let failure)):
            logger.warning("message dropped", metadata: ["reason": .string(failure.reason)])
        case .retry(let after, let attempt, let failure):
            logger.warning("message will be retried", metadata: ["reason": .string(failure.reason), "attempt": "\(attempt)", "delay": .string(DurationParser.format(after))])
        case .deadLetter(let failure):
            Counter(label: "outbound_dead_letters_total", dimensions: [("step", failure.step), ("code", failure.code.map(String.init) ?? (failure.expired ? "expired" : "none"))]).increment()
            logger.error(failure.expired ? "message expired; dead-lettered" : "message dead-lettered", metadata: ["reason": .string(failure.reason)])
        case .requeue(let after, _, let reason, let pause):
            logger.warning(pause == nil ? "message requeued" : "message requeued; sender paused", metadata: ["reason": .string(reason), "delay": .string(DurationParser.format(after))])
        }
    }
}

extension Timer {
    fileprivate func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
