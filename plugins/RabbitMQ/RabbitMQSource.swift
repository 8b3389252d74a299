import AMQPClient
import Foundation
import Logging
import PipelineKit
import Synchronization

/// The `rabbitmq` source: consumes the queue with at most `concurrency` messages in
/// flight and carries out each decision, acknowledging a message only once its
/// outcome is durable (retry and dead-letter copies are confirmed first).
public final class RabbitMQSource: Source {
    private enum Event: Sendable {
        case consumer(AMQPConsumerEvent)
        case shutdown
    }

    private struct PauseState {
        var reason: String?
        var next: Duration
        var until: ContinuousClock.Instant?
    }

    public let topology: QueueTopology
    private let consumer: AMQPConsumer
    private let publisher: AMQPPublisher
    private let concurrency: Int
    private let declare: Bool
    private let drainTimeout: Duration
    private let firstPause: Duration
    private let logger: Logger
    private let events: AsyncStream<Event>
    private let eventSink: AsyncStream<Event>.Continuation
    private let pause: Mutex<PauseState>
    private let stopRequested = Atomic<Bool>(false)

    public init(settings: Settings, retry: RetryPolicy, logger: Logger) throws {
        var urls: [AMQPURL] = []
        for text in try settings.strings("url") { urls.append(try AMQPURL(text)) }
        let queue = try settings.string("queue")
        topology = QueueTopology(queue: queue, type: QueueTopology.QueueType(rawValue: try settings.string("queue_type")) ?? .classic,
                                 deliveryLimit: try settings.integer("delivery_limit"), retryDelays: retry.backoff, jitter: retry.jitter)
        let heartbeat = Int(try settings.duration("heartbeat").components.seconds)
        consumer = AMQPConsumer(urls: urls, queue: queue, prefetch: try settings.integer("prefetch"), heartbeat: heartbeat, logger: logger)
        publisher = AMQPPublisher(urls: urls, heartbeat: heartbeat, logger: logger)
        concurrency = try settings.integer("concurrency")
        declare = try settings.boolean("declare")
        drainTimeout = try settings.duration("drain_timeout")
        firstPause = try settings.duration("pause")
        pause = Mutex(PauseState(reason: nil, next: firstPause, until: nil))
        self.logger = logger
        (events, eventSink) = AsyncStream.makeStream(of: Event.self)
    }

    public func beginShutdown() {
        stopRequested.store(true, ordering: .relaxed)
        eventSink.yield(.shutdown)
    }

    public func status() async -> SourceStatus {
        let consumerStatus = consumer.status
        let reason = pause.withLock { $0.reason }
        return SourceStatus(connected: consumerStatus.connected, consuming: consumerStatus.consuming, pausedReason: reason, error: consumerStatus.lastError)
    }

    public func run(handler: @escaping @Sendable () -> any MessageHandler) async throws {
        publisher.start()
        defer {
            consumer.stop()
            publisher.stop()
        }
        if declare { try await declareTopology() }
        if stopRequested.load(ordering: .relaxed) { return }
        consumer.start()
        let forward = Task { [consumer, eventSink] in
            for await event in consumer.events { eventSink.yield(.consumer(event)) }
        }
        defer { forward.cancel() }
        await withTaskGroup(of: Bool.self) { group in
            var inFlight = 0
            var shuttingDown = false
            for await event in events {
                switch event {
                case .shutdown:
                    shuttingDown = true
                    consumer.pause()
                case .consumer(.delivery(let delivery)):
                    if shuttingDown || Task.isCancelled {
                        consumer.nack(delivery, requeue: true)
                        continue
                    }
                    while inFlight >= concurrency, await group.next() != nil {
                        inFlight -= 1
                    }
                    inFlight += 1
                    group.addTask {
                        await self.process(delivery, handler())
                        return false
                    }
                case .consumer(.connected(let broker)):
                    logger.info("consuming", metadata: ["broker": .string(broker), "queue": .string(topology.queue)])
                case .consumer(.disconnected(let reason)):
                    logger.warning("rabbitmq connection lost; reconnecting", metadata: ["error": .string(reason)])
                }
                if shuttingDown || Task.isCancelled { break }
            }
            await drain(&group, inFlight: inFlight)
        }
    }

    /// Waits for in-flight messages up to the drain timeout; then cancels them (they requeue and release their keys).
    /// Deliveries that arrived meanwhile return to the queue when the connection closes.
    private func drain(_ group: inout TaskGroup<Bool>, inFlight: Int) async {
        var remaining = inFlight
        let timeout = drainTimeout
        group.addTask {
            try? await Task.sleep(for: timeout)
            return true
        }
        while remaining > 0, let isDeadline = await group.next() {
            if isDeadline {
                logger.warning("drain timeout reached; requeueing messages still in flight", metadata: ["timeout": "\(timeout)", "in_flight": "\(remaining)"])
                break
            }
            remaining -= 1
        }
        group.cancelAll()
        await group.waitForAll()
    }

    private func declareTopology() async throws {
        var delay = Duration.milliseconds(200)
        while true {
            do {
                for declaration in topology.declarations { try await publisher.declare(declaration) }
                return
            } catch {
                if case .broker = error { throw error }
                if case .authentication = error { throw error }
                try Task.checkCancellation()
                if stopRequested.load(ordering: .relaxed) { return }
                logger.warning("cannot declare queues yet; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
    }

    private func process(_ delivery: AMQPDelivery, _ handler: any MessageHandler) async {
        let made = delivery.properties.headers["x-attempts"]?.intValue ?? 0
        let decision = await handler.handle(Message(body: delivery.body, attempt: made + 1))
        switch decision {
        case .ack(let reason):
            if case .completed = reason { resetPause() }
            consumer.ack(delivery)
        case .retry(let after, let attempt, _, _):
            await republish(delivery, after: after, attemptsMade: attempt - 1)
        case .deadLetter(let step, let reason):
            var properties = delivery.properties
            properties.headers["x-error-step"] = .string(step)
            properties.headers["x-error"] = .string(String(reason.prefix(2000)))
            properties.headers["x-attempts"] = .int(Int64(made + 1))
            if await publishDurably(routingKey: topology.deadQueue, delivery.body, properties) {
                consumer.ack(delivery)
            } else {
                consumer.nack(delivery, requeue: true)
            }
        case .requeue(let after, _, let reason, let pauseSource):
            if after == .zero {
                consumer.nack(delivery, requeue: true)
            } else {
                await republish(delivery, after: after, attemptsMade: made)
            }
            if pauseSource { pauseConsumption(reason) }
        }
    }

    /// Publishes a copy to the delay queue for `after`, confirmed, then acknowledges the original.
    private func republish(_ delivery: AMQPDelivery, after: Duration, attemptsMade: Int) async {
        let (queue, expiration) = topology.route(delay: after, random: Double.random(in: 0..<1))
        var properties = delivery.properties
        properties.headers["x-attempts"] = .int(Int64(attemptsMade))
        properties.expiration = String(expiration)
        if await publishDurably(routingKey: queue, delivery.body, properties) {
            consumer.ack(delivery)
        } else {
            consumer.nack(delivery, requeue: true)
        }
    }

    /// Publishes until confirmed; false only when the worker is shutting down first.
    private func publishDurably(routingKey: String, _ body: [UInt8], _ properties: AMQPProperties) async -> Bool {
        var delay = Duration.milliseconds(100)
        while true {
            do {
                try await publisher.publish(routingKey: routingKey, body: body, properties: properties)
                return true
            } catch {
                if Task.isCancelled { return false }
                logger.warning("publish to \(routingKey) not confirmed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                if Task.isCancelled { return false }
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// Pauses consumption after a sender-side failure (token, permissions), resuming after a backoff.
    private func pauseConsumption(_ reason: String) {
        let duration: Duration? = pause.withLock { state in
            state.reason = reason
            if let until = state.until, until > .now { return nil }
            let duration = state.next
            state.until = .now + duration
            state.next = min(state.next * 2, .seconds(300))
            return duration
        }
        guard let duration else { return }
        logger.error("sender-side failure: consumption paused", metadata: ["reason": .string(reason), "pause": .string(DurationParser.format(duration))])
        consumer.pause()
        Task { [self] in
            try? await Task.sleep(for: duration)
            pause.withLock { $0.until = nil }
            consumer.resume()
        }
    }

    private func resetPause() {
        let wasPaused = pause.withLock { state in
            defer {
                state.reason = nil
                state.next = firstPause
            }
            return state.reason != nil
        }
        if wasPaused { logger.notice("sending works again; sender-side failure cleared") }
    }
}

extension SourcePlugin {
    /// The `rabbitmq` source plugin.
    public static let rabbitMQ = SourcePlugin(
        name: "rabbitmq",
        summary: "consumes a RabbitMQ queue (librabbitmq); retries through delay queues, dead letters to {queue}.dead",
        settings: RabbitMQSettings.schema,
        make: { context in try RabbitMQSource(settings: context.settings, retry: context.retry, logger: context.logger) }
    )
}
