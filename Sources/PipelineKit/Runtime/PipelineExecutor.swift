import Foundation
import Logging
import Metrics

/// Runs a message through the steps in order and turns step outcomes and the
/// policies (`on_error`, `degradation`, retry) into one `Decision`.
///
/// It does no I/O of its own: steps do, and the source carries out the decision.
public struct PipelineExecutor: MessageHandler {
    public let pipelineName: String
    public let steps: [BoundStep]
    public let retry: RetryPolicy
    public let workerID: String
    public let clock: any WallClock
    public let logger: Logger
    private let stepTimers: [Timer]
    private let inFlight: Meter
    /// `outbound_messages_total` by deciding step and outcome, made once (not per message).
    private let outcomeCounters: [String: [String: Counter]]

    public init(pipelineName: String, steps: [BoundStep], retry: RetryPolicy, workerID: String, clock: any WallClock = SystemWallClock(), logger: Logger) {
        self.pipelineName = pipelineName
        self.steps = steps
        self.retry = retry
        self.workerID = workerID
        self.clock = clock
        self.logger = logger
        self.stepTimers = steps.map { Timer(label: "outbound_step_duration_seconds", dimensions: [("step", $0.name)], preferredDisplayUnit: .seconds) }
        self.inFlight = Meter(label: "outbound_messages_in_flight")
        let outcomes = ["completed", "duplicate", "dropped", "retry", "dead_letter", "requeue"]
        self.outcomeCounters = Dictionary(uniqueKeysWithValues: (["pipeline"] + steps.map(\.name)).map { step in
            (step, Dictionary(uniqueKeysWithValues: outcomes.map { ($0, Counter(label: "outbound_messages_total", dimensions: [("step", step), ("outcome", $0)])) }))
        })
    }

    public func handle(_ message: Message) async -> Decision {
        var message = message
        return await process(&message)
    }

    /// Handles one message; `message` carries what the steps added (e.g. the request sent).
    public func process(_ message: inout Message) async -> Decision {
        inFlight.increment()
        defer { inFlight.decrement() }
        let internalID = message.internalID
        let decision = await runSteps(&message, internalID: internalID)
        MessageLogContext.during(internalID, step: decision.stepName ?? "pipeline") {
            record(decision)
        }
        return decision
    }

    private func runSteps(_ message: inout Message, internalID: String?) async -> Decision {
        // Every step before the current one passed, except those skipped under fail_open
        // (rare: this stays empty, and unallocated, on the usual path).
        var skipped: [Int] = []
        var sent = false
        for (index, bound) in steps.enumerated() {
            let context = StepContext(stepName: bound.name, logger: logger, workerID: workerID, clock: clock)
            if Task.isCancelled, !sent {
                await undo(before: index, skipping: skipped, message, internalID: internalID)
                return .requeue(after: .zero, step: bound.name, reason: "worker shutting down", pauseSource: false)
            }
            let started = ContinuousClock.now
            do {
                let outcome = try await MessageLogContext.during(internalID, step: bound.name) {
                    try await bound.step.run(&message, context)
                }
                stepTimers[index].recordInterval(since: started)
                switch outcome {
                case .next:
                    if bound.irreversible { sent = true }
                case .finish(let reason):
                    return .ack(.finished(step: bound.name, reason: reason))
                case .requeue(let after, let reason):
                    await undo(before: index, skipping: skipped, message, internalID: internalID)
                    return .requeue(after: after ?? retry.delay(beforeAttempt: 2), step: bound.name, reason: reason, pauseSource: false)
                }
            } catch {
                stepTimers[index].recordInterval(since: started)
                if Task.isCancelled, !sent {
                    await undo(before: index, skipping: skipped, message, internalID: internalID)
                    return .requeue(after: .zero, step: bound.name, reason: "worker shutting down", pauseSource: false)
                }
                let failure = (error as? StepFailure) ?? StepFailure(.transient, String(describing: error))
                if sent {
                    MessageLogContext.during(internalID, step: bound.name) {
                        logger.error("step failed after the message was sent; acknowledged so it is not sent twice", metadata: ["error": "\(failure)"])
                    }
                    Counter(label: "outbound_step_errors_total", dimensions: [("step", bound.name), ("kind", failure.kind.rawValue)]).increment()
                    return .ack(.completed)
                }
                if failure.kind == .unavailable, bound.definition.degradation == .failOpen {
                    Counter(label: "outbound_degraded_total", dimensions: [("step", bound.name)]).increment()
                    MessageLogContext.during(internalID, step: bound.name) {
                        logger.debug("resource unavailable; continuing (fail_open)", metadata: ["error": "\(failure.reason)"])
                    }
                    skipped.append(index)
                    continue
                }
                await undo(before: index, skipping: skipped, message, internalID: internalID)
                return decide(failure, step: bound, attempt: message.attempt)
            }
        }
        return .ack(.completed)
    }

    /// The decision for a failure of `step` on delivery `attempt`, before any undo.
    public func decide(_ failure: StepFailure, step: BoundStep, attempt: Int) -> Decision {
        let name = step.name
        switch failure.kind {
        case .unavailable:
            return .requeue(after: retry.delay(beforeAttempt: 2), step: name, reason: failure.reason, pauseSource: false)
        case .senderSide:
            return .requeue(after: retry.delay(beforeAttempt: 2), step: name, reason: failure.reason, pauseSource: true)
        case .invalid, .permanent, .transient:
            switch step.definition.onError {
            case .drop:
                return .ack(.dropped(step: name, reason: failure.reason))
            case .deadLetter:
                return .deadLetter(step: name, reason: failure.reason)
            case .retry:
                guard failure.kind == .transient else { return .deadLetter(step: name, reason: failure.reason) }
                guard attempt < retry.maxAttempts else {
                    return .deadLetter(step: name, reason: "gave up after \(attempt) attempts: \(failure.reason)")
                }
                let delay = max(retry.delay(beforeAttempt: attempt + 1), failure.retryAfter ?? .zero)
                return .retry(after: delay, attempt: attempt + 1, step: name, reason: failure.reason)
            }
        }
    }

    /// Undoes, last first, the steps before `end` that passed.
    private func undo(before end: Int, skipping skipped: [Int], _ message: Message, internalID: String?) async {
        for index in (0..<end).reversed() where !skipped.contains(index) {
            let context = StepContext(stepName: steps[index].name, logger: logger, workerID: workerID, clock: clock)
            await MessageLogContext.during(internalID, step: steps[index].name) {
                await steps[index].step.undo(message, context)
            }
        }
    }

    /// Counts and logs the decision (the task-local log context names the deciding step).
    private func record(_ decision: Decision) {
        let step = decision.stepName ?? "pipeline"
        (outcomeCounters[step]?[decision.outcomeName] ?? Counter(label: "outbound_messages_total", dimensions: [("step", step), ("outcome", decision.outcomeName)])).increment()
        switch decision {
        case .ack(.completed):
            logger.info("message completed")
        case .ack(.finished(_, let reason)):
            logger.info("message acknowledged without sending", metadata: ["reason": .string(reason)])
        case .ack(.dropped(_, let reason)):
            logger.warning("message dropped", metadata: ["reason": .string(reason)])
        case .retry(let after, let attempt, _, let reason):
            logger.warning("message will be retried", metadata: ["reason": .string(reason), "attempt": "\(attempt)", "delay": .string(DurationParser.format(after))])
        case .deadLetter(_, let reason):
            logger.error("message dead-lettered", metadata: ["reason": .string(reason)])
        case .requeue(let after, _, let reason, let pause):
            logger.warning(pause ? "message requeued; consumption paused" : "message requeued", metadata: ["reason": .string(reason), "delay": .string(DurationParser.format(after))])
        }
    }
}

extension Timer {
    fileprivate func recordInterval(since start: ContinuousClock.Instant) {
        let elapsed = ContinuousClock.now - start
        recordNanoseconds(elapsed.components.seconds * 1_000_000_000 + elapsed.components.attoseconds / 1_000_000_000)
    }
}
