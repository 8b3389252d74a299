import Foundation
import Logging
import Metrics
import ServiceLifecycle
import Synchronization
import Tracing

/// The worker loop: takes deliveries from a `Source`, runs each through the current pipeline
/// with at most `concurrency` running at once, parks waiting messages, carries out each
/// decision (attempts, jitter, pauses), and on graceful shutdown stops taking messages,
/// returns those not started or waiting, and drains those running (cancelling them after
/// `drain_timeout`; a send in progress always finishes).
///
/// ```swift
/// let worker = PipelineWorker(source: source, pipelines: host, configuration: definition.worker, flow: flow, logger: logger)
/// let group = ServiceGroup(services: [worker], gracefulShutdownSignals: [.sigterm], logger: logger)
/// try await group.run()
/// ```
public final class PipelineWorker: Service, Sendable {
    public let source: any Source
    public let configuration: WorkerConfiguration
    public let flow: FlowControl
    private let pipelines: any PipelineProvider
    private let sink: (any OutcomeSink)?
    private let logger: Logger
    private let permits: Permits
    private let shutdown = ShutdownSignal()
    /// When shutdown began: the drain runs from then, not from when the source confirms its intake stopped.
    private let shutdownBegan = Mutex<ContinuousClock.Instant?>(nil)
    /// Parking per lane, by rank (one, rank 0, for a source without lanes).
    private let parkings: [Parking]
    private let running = ActivityTracker()
    private let pauses: SourcePauses
    private let unreported = UnreportedOutcomes()
    /// How long a refused outcome waits before it is reported again: 1 s, doubling, at most 30 s.
    private let reportRetry: EscalationPolicy
    private let inFlight = Meter(label: "outbound_messages_in_flight")
    private let connectedGauge = Gauge(label: "outbound_source_connected")
    private let tracing = MessageTracing()

    public init(source: any Source, pipelines: any PipelineProvider, configuration: WorkerConfiguration, flow: FlowControl, sink: (any OutcomeSink)? = nil,
                reportRetry: EscalationPolicy = EscalationPolicy(first: .seconds(1), factor: 2, cap: .seconds(30)), logger: Logger) {
        self.source = source
        self.reportRetry = reportRetry
        self.pipelines = pipelines
        self.configuration = configuration
        self.flow = flow
        self.sink = sink
        self.logger = logger
        permits = Permits(configuration.concurrency)
        // Room for `concurrency` new deliveries of each lane always stays, so waiting messages never stop intake.
        let capacity = source.capacity > configuration.concurrency ? source.capacity - configuration.concurrency : max(1, source.capacity / 2)
        let lanes: [Lane?] = source.lanes.isEmpty ? [nil] : source.lanes
        parkings = lanes.map { [shutdown] in Parking(capacity: capacity, lane: $0, shutdown: shutdown) }
        pauses = SourcePauses(holds: flow.holds, source: source, clock: flow.clock, shutdown: shutdown, logger: logger)
        connectedGauge.record(0)
    }

    /// Why consumption is paused, when it is (for `/health` and `/ready`).
    public var pauseReason: String? { pauses.reason }

    /// Whether the task that ends a pause sleeps on the flow's clock now (for a driver of a manual clock).
    public var pauseEndSleeps: Bool { pauses.sleepsOnClock }

    /// Why outcomes wait to be reported (the sink refused them) and how many messages hold on
    /// to their delivery meanwhile; nil when none waits (for `/health`).
    public var unreportedOutcomes: (count: Int, reason: String)? { unreported.current }

    /// Messages taken from the source and not yet done with (running, parked, or waiting for
    /// their outcome to be taken), and how many it has taken since it started.
    public var messages: (active: Int, taken: Int) {
        let counts = running.counts
        return (counts.active, counts.begun)
    }

    /// How long the longest-waiting parked message has waited.
    public var oldestWait: Duration { parkings.map(\.oldestWait).max() ?? .zero }

    public func run() async throws {
        // (For `stopping`, when the worker ends without a shutdown: its source failed to start, say.)
        defer { shutdown.raise() }
        try await withGracefulShutdownHandler {
            try await source.start()
            await loop()
            await source.stop()
            logger.info("worker stopped")
        } onGracefulShutdown: {
            self.beginShutdown()
        }
    }

    /// Returns once the worker's shutdown has begun or its `run` has ended (or the task is cancelled).
    public func stopping() async {
        await shutdown.wait()
    }

    /// Stops taking messages: waiting and not-yet-started ones go back to the source, running ones drain.
    public func beginShutdown() {
        guard !shutdown.isRaised else { return }
        logger.info("shutting down: no new messages, draining those in flight", metadata: ["in_flight": "\(running.active)"])
        shutdownBegan.withLock { $0 = $0 ?? .now }
        shutdown.raise()
        permits.close()
        pauses.stop()
        source.stopIntake()
    }

    private func loop() async {
        await withDiscardingTaskGroup { group in
            group.addTask { await self.pauses.follow() }
            intake: for await event in source.events {
                switch event {
                case .delivery(let delivery):
                    if shutdown.isRaised {
                        _ = await source.settle(delivery, .release)
                        continue
                    }
                    running.begin()
                    // Immediate: the message starts on this thread, up to its first await (a
                    // permit, or the first Redis call), instead of waiting for another to pick it up.
                    group.addImmediateTask {
                        await self.process(delivery)
                        self.running.end()
                    }
                case .connected(let endpoint):
                    // (With lanes, every lane's consumer: 1 once all are connected.)
                    connectedGauge.record(source.status().connected ? 1 : 0)
                    logger.info("consuming", metadata: ["from": .string(endpoint)])
                case .disconnected(let reason):
                    connectedGauge.record(0)
                    logger.warning("source connection lost; reconnecting", metadata: ["error": .string(reason)])
                case .intakeStopped:
                    break intake
                }
            }
            // `drain_timeout` from SIGTERM: a broker slow to confirm the consumer's cancel (it answers a
            // silent connection only when the heartbeat fails) does not lengthen the drain.
            let drained = shutdownBegan.withLock { $0 }.map { ContinuousClock.now - $0 } ?? .zero
            if running.active > 0, await !running.waitUntilIdle(timeout: max(.zero, configuration.drainTimeout - drained)) {
                logger.warning("drain timeout reached; requeueing messages still in flight (a send in progress finishes first)",
                               metadata: ["timeout": .string(DurationParser.format(configuration.drainTimeout)), "in_flight": "\(running.active)"])
                group.cancelAll()
            }
            pauses.stop()
        }
    }

    private func process(_ delivery: Delivery) async {
        let rank = delivery.lane?.rank ?? 0
        guard await permits.acquire(rank: rank) else {
            _ = await source.settle(delivery, .release)
            return
        }
        let pipeline = pipelines.checkout()
        defer { pipeline.done() }
        guard let span = tracing.startDelivery(delivery, pipeline: pipeline.executor.pipelineName) else {
            return await run(delivery, rank: rank, pipeline: pipeline, span: nil)
        }
        defer { span.end() }
        // A trace not sampled goes on (events carry its headers) but is not current: nothing makes spans of it.
        guard span.isRecording else { return await run(delivery, rank: rank, pipeline: pipeline, span: span) }
        await ServiceContext.withValue(span.context) { await run(delivery, rank: rank, pipeline: pipeline, span: span) }
    }

    /// Runs a delivery that holds a permit through its pipeline until it is settled (`span`: its trace, when tracing is on).
    private func run(_ delivery: Delivery, rank: Int, pipeline: CheckedOutPipeline, span: (any Span)?) async {
        let executor = pipeline.executor
        inFlight.increment()
        var message = Message(body: delivery.body, attempt: delivery.attemptsMade + 1, carried: delivery.carried, lane: delivery.lane, firstSeen: delivery.firstSeen)
        var delivery = delivery
        if let span {
            let received = TraceHeaders.usable(delivery.traceHeaders)
            let trace = tracing.trace(continuing: received, in: span)
            message.trace = trace
            if span.isRecording, let id = message.internalID { span.attributes["outbound.internal_id"] = id }
            // A message that came without a trace to continue: its copies (a retry, a dead letter) go on in the one
            // it began here, so that its next attempt is in it too and its letter names it.
            if received.isEmpty, !trace.headers.isEmpty { delivery.traceHeaders = trace.headers }
        }
        if let maxAge = configuration.maxAge {
            message.notAfter = (delivery.firstSeen ?? flow.clock.now()).addingTimeInterval(maxAge.secondsDouble)
        }
        var run = PipelineRun(message)
        let taken = flow.clock.now()
        while true {
            let decision: Decision
            let reported: Bool
            switch await executor.advance(&run) {
            case .decided(let decided):
                decision = decided
                // A pause of everything stops intake now, not once the outcome is reported (the sink may refuse it).
                if case .requeue(_, _, _, let pause?) = decided, pause.coversAll { pauses.changed() }
                reported = await report(decided, run: run)
            case .sent:
                decision = .ack(.completed)
                reported = await reportWhileFinishing(&run, executor: executor)
            case .waiting(let wait):
                inFlight.decrement()
                permits.release()
                let keepUntil = configuration.waitsWithinHolds ? run.keepInMemoryUntil : nil
                let kept = configuration.longestInMemory.map { taken.addingTimeInterval($0.secondsDouble) }
                var parked = await park(wait, rank: rank, keepUntil: keepUntil, keptUntil: kept)
                // A reload replaced its pipeline meanwhile (a new token, a trusted CA): it runs on the new one, after a
                // trip through the source, instead of going on with what was replaced — failing, and pausing everything again.
                if case .goOn = parked, pipeline.isReplaced() {
                    permits.release()
                    parked = .leave(back: flow.clock.now())
                }
                guard case .leave(let back) = parked else {
                    inFlight.increment()
                    continue
                }
                await executor.abandon(&run)
                if shutdown.isRaised, run.message.carried == delivery.carried {
                    _ = await source.settle(delivery, .release)
                } else {
                    // (Also at shutdown when the wait changed what the message carries — a
                    // marketing retry's time — which a plain release would lose.)
                    // Back a little before the wait ends, to spend the rest of it parked.
                    let remaining = Duration.milliseconds(Int64(max(back.timeIntervalSince(flow.clock.now()) - sourceLead, Self.shortestTrip) * 1000))
                    MessageLogContext.during(run.message.logContext, step: PipelineExecutor.runtimeStepName) {
                        logger.debug("waiting through the source", metadata: ["reason": .string(wait.reason.rawValue), "delay": .string(DurationParser.format(remaining))])
                    }
                    Counter(label: "outbound_waits_through_source_total", dimensions: [("reason", wait.reason.rawValue)]).increment()
                    _ = await source.settle(delivery, .redeliver(after: remaining, attemptsMade: delivery.attemptsMade, carried: run.message.carried,
                                                                 evenIfRedelivered: run.message.outlivesItsDelivery))
                }
                return
            }
            span?.attributes["outbound.outcome"] = decision.outcomeName
            if case .deadLetter(let failure) = decision { span?.setStatus(SpanStatus(code: .error, message: failure.reason)) }
            if reported {
                await settle(delivery, as: decision, run: run, executor: executor)
                inFlight.decrement()
                permits.release()
            } else {
                inFlight.decrement()
                permits.release()
                await reportAgain(decision, run: run, executor: executor, delivery: delivery)
            }
            return
        }
    }

    /// The sink refused the outcome: the delivery stays with the worker (never back to the
    /// source in a loop: each return would count toward a quorum queue's delivery limit) and the
    /// outcome is reported again after 1 s, 2 s, … 30 s until it is taken. Its permit is free
    /// meanwhile, so intake stops by itself once the source's capacity (prefetch) is held. On
    /// shutdown, or at once from a source whose caller retries (a webhook), the delivery goes back
    /// to the source (a sent message's claim stays: its next delivery reports a duplicate with the
    /// first wamid).
    private func reportAgain(_ decision: Decision, run: PipelineRun, executor: PipelineExecutor, delivery: Delivery) async {
        unreported.begin()
        defer { unreported.end() }
        var refusals = 0
        while source.keepsDeliveriesWhileOutcomesAreRefused, await shutdown.sleep(for: reportRetry.length(refusals)) {
            guard source.stillHolds(delivery) else {
                // Unsent, and its redelivery may have ended on this run's account: a copy goes instead (below).
                if !run.sent, run.message.outlivesItsDelivery { break }
                // Its connection is gone and the broker has handed it out again: that delivery reports it (a sent one as a duplicate).
                MessageLogContext.during(run.message.logContext, step: PipelineExecutor.runtimeStepName) {
                    logger.notice("outcome still not recorded and the delivery went back to the broker with its connection; its redelivery reports it")
                }
                return
            }
            if await report(decision, run: run) {
                await settle(delivery, as: decision, run: run, executor: executor)
                return
            }
            refusals += 1
        }
        if !source.keepsDeliveriesWhileOutcomesAreRefused { unreported.handedBack() }
        // Nothing was sent and nothing undone yet (a completed run without a send, a duplicate): what the
        // steps recorded is undone, so the next delivery redoes it. A failure's run was undone when decided.
        if !run.sent, decision == .ack(.completed) || decision.isFinished {
            var abandoned = run
            await executor.abandon(&abandoned)
        }
        // (Its connection may have gone since it was last looked at: then the broker hands it out again —
        // unless that redelivery may have ended on this run's account: then a copy goes, as below.)
        guard source.stillHolds(delivery) || (!run.sent && run.message.outlivesItsDelivery) else { return }
        // Sent, it goes back as it came: a copy would carry the note that it claimed its key, and be
        // taken over and sent again after the lease where the original is acknowledged as a duplicate.
        _ = await source.settle(delivery, run.sent ? .release : release(delivery, carrying: run.message.carried, outliving: run.message.outlivesItsDelivery))
    }

    /// Back to the source at once: a plain release — unless the run changed what the message carries
    /// (the idempotency step's note that it claimed its key, say), which a release would lose, the
    /// original coming back as it was: then a copy that carries it, round the shortest delay.
    private func release(_ delivery: Delivery, carrying carried: [String: String], outliving: Bool) -> Settlement {
        guard carried != delivery.carried else { return .release }
        return .redeliver(after: .milliseconds(Int64(Self.shortestTrip * 1000)), attemptsMade: delivery.attemptsMade, carried: carried, evenIfRedelivered: outliving)
    }

    /// After the send the outcome is decided (completed): it is reported while the steps after
    /// the send (bookkeeping) run, and both are done when this returns. The report starts on
    /// this thread, up to its first await (the broker's confirm). False: not reported.
    private func reportWhileFinishing(_ run: inout PipelineRun, executor: PipelineExecutor) async -> Bool {
        let sent = run
        return await withTaskGroup(of: Bool.self) { group in
            group.addImmediateTask { await self.report(.ack(.completed), run: sent) }
            let rest = await executor.advance(&run)
            assert(rest == .decided(.ack(.completed)), "after the send the executor decides completed, got \(rest)")
            return await group.next() ?? false
        }
    }

    /// Where a waiting message spends its wait.
    private enum Parked {
        /// In memory: its wait is over (or it looks again) and it holds a permit.
        case goOn
        /// Through the source, back then.
        case leave(back: Date)
    }

    /// Parks the message until its wait ends (or it looks again: `Wait.looksAgainAfter`) and a
    /// permit is free; else it leaves memory: back at the end of its wait when the wait is long,
    /// parking is full or the worker is shutting down; back at its next look when what the run
    /// holds — its claim — would not outlast it (`keepUntil`, `Step.heldFor`) or the delivery has
    /// been with the worker long enough (`keptUntil`, `WorkerConfiguration.longestInMemory`).
    private func park(_ wait: Wait, rank: Int, keepUntil: Date?, keptUntil: Date?) async -> Parked {
        let now = flow.clock.now()
        let until = wait.inMemoryUntil(at: now, maxPark: configuration.maxPark)
        let remaining = until.timeIntervalSince(now)
        if let keepUntil, until > keepUntil { return .leave(back: until) }
        // (A wait shorter than the time a trip through the source comes back early is spent in memory
        // whatever the delivery's time here; longer ones leave, for the shortest trip at least.)
        if let keptUntil, until > keptUntil, remaining > sourceLead { return .leave(back: until) }
        // Due already (a send in doubt goes back to the step that resolves it): only a permit to wait for.
        if remaining <= 0, !shutdown.isRaised { return await permitBefore(keepUntil, rank: rank) ? .goOn : .leave(back: until) }
        let parking = parkings[min(rank, parkings.count - 1)]
        // A wait shorter than the time a trip through the source comes back early would be spent
        // there anyway: it stays in memory even when parking is full, instead of going round at once.
        // (Not longer ones: waits of a second — a pair's first hold, a probe's answer — would fill
        // parking beyond capacity and take the lane's room for new deliveries.)
        let short = remaining <= sourceLead
        guard !shutdown.isRaised, remaining <= configuration.maxPark.secondsDouble, let place = parking.admit(wait, beyondCapacity: short) else {
            return .leave(back: wait.until)
        }
        guard await parking.wait(place, until: until, clock: flow.clock) == .due else { return .leave(back: wait.until) }
        return await permitBefore(keepUntil, rank: rank) ? .goOn : .leave(back: until)
    }

    /// A permit to go on with, taken while the run may still stay in memory (a long wait for one
    /// while every permit is busy counts toward what the run holds, too).
    private func permitBefore(_ keepUntil: Date?, rank: Int) async -> Bool {
        guard await permits.acquire(rank: rank, resuming: true) else { return false }
        if let keepUntil, flow.clock.now() > keepUntil {
            permits.release()
            return false
        }
        return true
    }

    /// How long before its wait ends a message that waits through the source comes back, to spend the rest parked.
    private var sourceLead: TimeInterval { min(configuration.maxPark.secondsDouble / 2, 0.5) }

    /// The shortest trip through the source (its expiration in a delay queue): SPEC 11, never
    /// round the broker with a tiny expiration. A wait that leaves memory with less left (parking
    /// full, its claim's lease, its time here) goes round for this long, back up to this much
    /// after its wait ended.
    public static let shortestTrip: TimeInterval = 1

    /// Reports the outcome to the sink; false when it was not recorded (the sink refused it).
    private func report(_ decision: Decision, run: PipelineRun) async -> Bool {
        guard let sink else { return true }
        do {
            try await sink.record(Outcome(decision: decision, run: run))
            unreported.recorded()
            return true
        } catch {
            // Logged as an error once per outage, not once per message and retry.
            let level: Logger.Level = unreported.refused("\(error)") ? .error : .debug
            MessageLogContext.during(run.message.logContext, step: PipelineExecutor.runtimeStepName) {
                logger.log(level: level, "outcome not recorded; the message stays here and its outcome is reported again with backoff",
                           metadata: ["error": "\(error)", "outcome": .string(decision.outcomeName)])
            }
            return false
        }
    }

    /// Settles the delivery as the decision says, once its outcome is reported; once acknowledged, the steps hear it.
    private func settle(_ delivery: Delivery, as decision: Decision, run: PipelineRun, executor: PipelineExecutor) async {
        let settlement: Settlement
        let outliving = run.message.outlivesItsDelivery
        switch decision {
        case .ack:
            settlement = .ack
        case .retry(let after, let attempt, _):
            settlement = .redeliver(after: jittered(after), attemptsMade: attempt - 1, carried: run.message.carried, evenIfRedelivered: outliving)
        case .deadLetter(let failure):
            settlement = .deadLetter(DeadLetter(step: failure.step, reason: failure.reason, attemptsMade: run.message.attempt, code: failure.code,
                                                evenIfRedelivered: outliving))
        case .requeue(let after, _, _, let pause):
            settlement = after == .zero ? release(delivery, carrying: run.message.carried, outliving: outliving)
                : .redeliver(after: after, attemptsMade: delivery.attemptsMade, carried: run.message.carried, evenIfRedelivered: outliving)
            if pause?.coversAll == true { pauses.changed() }  // (again: a reload may have ended it meanwhile)
        }
        if await !source.settle(delivery, settlement) {
            logger.warning("settlement not carried out; the message went back to the queue", metadata: ["outcome": .string(decision.outcomeName)])
        } else if settlement == .ack {
            await executor.settled(run)
        }
    }

    private func jittered(_ delay: Duration) -> Duration {
        let jitter = configuration.retry.jitter * Double.random(in: 0..<1)
        return .milliseconds(Int64((Double(delay.milliseconds) * (1 + jitter)).rounded()))
    }

    /// Ends every pause now (a reload changed what failed: the token, the CA): sending and
    /// consuming go on, and a failure that remains pauses again from its first length.
    public func endPauses() {
        let ended = flow.holds.clear(kind: .paused)
        pauses.changed()
        if !ended.isEmpty {
            logger.notice("pauses ended by a reload", metadata: ["scopes": .string(ended.joined(separator: ", "))])
        }
    }
}
