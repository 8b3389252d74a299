import AMQPClient
import Foundation
import Logging
import Metrics
import PipelineKit
import Synchronization

/// The `rabbitmq` source: a transport of deliveries from its queue — or from each lane's queue,
/// one consumer (connection, prefetch) per lane, so a full lane never stops another — and of
/// settlements back: a retry or dead-letter copy is confirmed by the broker before the original
/// is acknowledged; a retry waits in its lane's retry queues, a dead letter names its lane (`x-lane`).
public final class RabbitMQSource: Source {
    public let topology: QueueTopology
    public let events: AsyncStream<SourceEvent>
    public var capacity: Int { settings.prefetch }
    public var lanes: [Lane] { settings.lanes.map(\.lane) }
    private let settings: RabbitMQSettings
    /// One per lane, by rank (one without lanes).
    private let consumers: [AMQPConsumer]
    private let publisher: AMQPPublisher
    private let continuation: AsyncStream<SourceEvent>.Continuation
    private let logger: Logger
    private let stopping = Atomic<Bool>(false)
    private let consumerStarted = Atomic<Bool>(false)
    private let settleFailures = Counter(label: "outbound_settle_failures_total")
    private let depthProbe = Mutex<Task<Void, Never>?>(nil)
    /// Every lane's consumer has ended: its last acks sent, its connection closed.
    private let consumersEnded: ConsumersEnded
    /// How long `stop` waits for that (a close is two RPCs of at most 2 s each).
    static let stopWait = Duration.seconds(5)

    public init(settings: Settings, worker: WorkerConfiguration, logger: Logger) throws {
        let settings = try RabbitMQSettings(settings)
        self.settings = settings
        topology = settings.topology(worker)
        self.logger = logger
        let (events, continuation) = AsyncStream.makeStream(of: SourceEvent.self)
        self.events = events
        self.continuation = continuation
        let lanes: [RabbitMQSettings.LaneQueue?] = settings.lanes.isEmpty ? [nil] : settings.lanes
        // The source's intake stops, and its events end, once every lane's consumer's have.
        let intakeStopped = Atomic<Int>(0)
        let finished = Atomic<Int>(0)
        let ended = ConsumersEnded()
        consumersEnded = ended
        consumers = lanes.map { lane in
            var logger = logger
            if let lane { logger[metadataKey: "lane"] = .string(lane.lane.name) }
            return AMQPConsumer(urls: settings.urls, queue: lane?.queue ?? settings.queue, prefetch: settings.prefetch, heartbeat: settings.heartbeat,
                                ackBatching: .forConsumer(prefetch: settings.prefetch, concurrency: worker.concurrency), logger: logger, events: { event in
                switch event {
                case .delivery(let delivery): continuation.yield(.delivery(Self.delivery(delivery, lane: lane?.lane)))
                case .connected(let broker): continuation.yield(.connected(broker))
                case .disconnected(let reason): continuation.yield(.disconnected(reason))
                case .intakeStopped:
                    if intakeStopped.add(1, ordering: .acquiringAndReleasing).newValue == lanes.count { continuation.yield(.intakeStopped) }
                }
            }, finished: {
                if finished.add(1, ordering: .acquiringAndReleasing).newValue == lanes.count {
                    continuation.finish()
                    ended.end()
                }
            })
        }
        publisher = AMQPPublisher(urls: settings.urls, heartbeat: settings.heartbeat, logger: logger)
    }

    /// Headers that hold what steps carry with a message (`Message.carried`).
    static let carriedPrefix = "x-carried-"

    /// A delivery as the runtime sees it: attempts from `x-attempts`, first seen at its replay
    /// (`x-replayed-at`), else from the `timestamp` property, else the `x-first-received` header of a copy, else now.
    static func delivery(_ delivery: AMQPDelivery, lane: Lane? = nil) -> Delivery {
        let headers = delivery.properties.headers
        let firstSeen = headers["x-replayed-at"].flatMap(HeaderTime.date)
            ?? delivery.properties.timestamp.map { Date(timeIntervalSince1970: TimeInterval($0)) }
            ?? headers["x-first-received"].flatMap(HeaderTime.date) ?? Date()
        var carried: [String: String] = [:]
        for (key, value) in headers.entries where key.hasPrefix(carriedPrefix) {
            if let text = value.stringValue { carried[String(key.dropFirst(carriedPrefix.count))] = text }
        }
        // `x-attempts` set upstream beyond the range (or below 0) must not overflow the count or retry a message for ever.
        return Delivery(body: delivery.body, attemptsMade: Delivery.attempts(clamping: headers["x-attempts"]?.intValue ?? 0), firstSeen: firstSeen, carried: carried, lane: lane,
                        traceHeaders: traceHeaders(of: delivery), receipt: delivery)
    }

    public func start() async throws {
        publisher.start()
        if settings.declare { try await declareTopology() }
        guard !stopping.load(ordering: .acquiring) else { return }
        consumerStarted.store(true, ordering: .releasing)
        consumers.forEach { $0.start() }
        depthProbe.withLock {
            $0 = Task { [publisher, topology, declare = settings.declare, logger] in
                if !declare { await Self.warnOfMissingQueues(of: topology, through: publisher, logger: logger) }
                await Self.reportDepth(of: topology, through: publisher)
            }
        }
    }

    /// With `declare: false`, says at start which of the queues the worker uses do not exist: a retry
    /// queue missing makes every retry copy refused — a failed send then tried again about once a
    /// second, its attempt not counted —, `.dead` missing every dead letter.
    private static func warnOfMissingQueues(of topology: QueueTopology, through publisher: AMQPPublisher, logger: Logger) async {
        for queue in topology.declarations.map(\.name) {
            do {
                _ = try await publisher.messageCount(queue)
                continue
            } catch {
                guard case .broker(404, _) = error else { continue }
            }
            let consequence = switch queue {
            case topology.deadQueue: "dead letters are refused and their messages go back to the queue, tried again about once a second"
            case _ where topology.laneQueues.contains(queue): "nothing is consumed from it"
            default: "retry copies to it are refused: a failed send goes back to the queue and is tried again about once a second, its delay and attempt lost"
            }
            logger.error("queue does not exist and declare is false: \(consequence); declare it, or set declare: true (the worker then declares it as it needs it)",
                         metadata: ["queue": .string(queue)])
        }
    }

    /// How often `outbound_queue_messages` is read from the broker.
    static let depthInterval = Duration.seconds(15)

    /// Keeps `outbound_queue_messages{queue}` (messages ready in each lane's queue and in `.dead`) current until cancelled.
    private static func reportDepth(of topology: QueueTopology, through publisher: AMQPPublisher) async {
        var gauges = (topology.laneQueues + [topology.deadQueue]).map { ($0, Gauge(label: "outbound_queue_messages", dimensions: [("queue", $0)])) }
        while !Task.isCancelled, !gauges.isEmpty {
            for (queue, gauge) in gauges {
                do {
                    gauge.record(try await publisher.messageCount(queue))
                } catch {
                    // A queue that does not exist (not declared by this worker) is not asked about again:
                    // each 404 would close the publisher's channel.
                    if case .broker(404, _) = error { gauges.removeAll { $0.0 == queue } }
                }
            }
            try? await Task.sleep(for: depthInterval)
        }
    }

    /// The consumer a delivery came from (its lane's).
    private func consumer(of delivery: Delivery) -> AMQPConsumer {
        consumers[min(delivery.lane?.rank ?? 0, consumers.count - 1)]
    }

    public func stillHolds(_ delivery: Delivery) -> Bool {
        (delivery.receipt as? AMQPDelivery).map(consumer(of: delivery).holds) ?? false
    }

    public func pause() { consumers.forEach { $0.pause() } }
    public func resume() { consumers.forEach { $0.resume() } }

    public func stopIntake() {
        stopping.store(true, ordering: .releasing)
        if consumerStarted.load(ordering: .acquiring) {
            consumers.forEach { $0.stopIntake() }
        } else {
            continuation.yield(.intakeStopped)
        }
    }

    public func stop() async {
        stopping.store(true, ordering: .releasing)
        depthProbe.withLock { $0?.cancel() }
        if consumerStarted.load(ordering: .acquiring) {
            consumers.forEach { $0.stop() }
            // The last acks go out on the consumers' threads: the process may end once this returns,
            // and acks lost then bring their messages back (as duplicates). Bounded: a broker that no longer answers.
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await self.consumersEnded.wait() }
                group.addTask { try? await Task.sleep(for: Self.stopWait) }
                await group.next()
                group.cancelAll()
            }
        } else {
            continuation.finish()
        }
        publisher.stop()
    }

    /// Connected and consuming when every lane's consumer is; the first error any of them has.
    public func status() -> SourceStatus {
        let statuses = consumers.map(\.status)
        return SourceStatus(connected: statuses.allSatisfy(\.connected), consuming: statuses.allSatisfy(\.consuming), error: statuses.lazy.compactMap(\.lastError).first)
    }

    public func settle(_ delivery: Delivery, _ settlement: Settlement) async -> Bool {
        guard let original = delivery.receipt as? AMQPDelivery else { return false }
        let consumer = consumer(of: delivery)
        switch settlement {
        case .ack:
            consumer.ack(original)
            return true
        case .release:
            consumer.nack(original, requeue: true)
            return true
        case .redeliver(let after, let attemptsMade, let carried, let evenIfRedelivered):
            let (queue, expiration) = topology.route(delay: after, laneQueue: delivery.lane.flatMap { settings.queue(ofLane: $0.name) })
            var properties = Self.copyProperties(of: original, firstSeen: delivery.firstSeen, trace: delivery.traceHeaders)
            properties.headers.entries.removeAll { $0.key.hasPrefix(Self.carriedPrefix) }
            for (key, value) in carried.sorted(by: { $0.key < $1.key }) { properties.headers[Self.carriedPrefix + key] = .string(value) }
            properties.headers["x-attempts"] = .int(Int64(attemptsMade))
            properties.expiration = String(expiration)
            return await publishThenAcknowledge(original, to: queue, properties, consumer, evenIfRedelivered: evenIfRedelivered)
        case .deadLetter(let letter):
            var properties = Self.copyProperties(of: original, firstSeen: delivery.firstSeen, trace: delivery.traceHeaders)
            // A letter stays until it is replayed or removed: the original's time to live is not its own.
            properties.expiration = nil
            properties.headers["x-error-step"] = .string(letter.step)
            properties.headers["x-error"] = .string(letter.reason.prefix(utf8Bytes: 2000))
            properties.headers["x-attempts"] = .int(Int64(letter.attemptsMade))
            properties.headers["x-dead-lettered-at"] = .string(UTCTimestamp.format(Date()))
            if let code = letter.code { properties.headers["x-error-code"] = .int(Int64(code)) }
            if let lane = delivery.lane { properties.headers[DeadLetteredMessage.laneHeader] = .string(lane.name) }
            return await publishThenAcknowledge(original, to: topology.deadQueue, properties, consumer, evenIfRedelivered: letter.evenIfRedelivered)
        }
    }

    /// Moves `user_id` — which the broker checks against the publishing connection's user — into
    /// the header `x-original-user-id`, for a copy published by another user than the original.
    static func keepUserIDAsHeader(_ properties: inout AMQPProperties) {
        guard let user = properties.userID else { return }
        properties.headers["x-original-user-id"] = .string(user)
        properties.userID = nil
    }

    /// The W3C trace-context headers of a delivery (`traceparent`, `tracestate`) that are text.
    static func traceHeaders(of delivery: AMQPDelivery) -> [String: String] {
        var found: [String: String] = [:]
        for (key, value) in delivery.properties.headers.entries where key == "traceparent" || key == "tracestate" {
            if let text = value.stringValue { found[key] = text }
        }
        return found
    }

    /// The properties a copy carries: the original's, except `user_id`, which the broker checks
    /// against the publishing connection's user (kept as the header `x-original-user-id`), and the
    /// trace context, which is `trace` (`Delivery.traceHeaders`: the runtime's, when the original
    /// came with none it could continue).
    static func copyProperties(of delivery: AMQPDelivery, firstSeen: Date?, trace: [String: String]) -> AMQPProperties {
        var properties = delivery.properties
        keepUserIDAsHeader(&properties)
        // Only a trace the runtime replaced is written: else the original's headers stay as they came.
        if trace != traceHeaders(of: delivery) {
            properties.headers.entries.removeAll { $0.key == "traceparent" || $0.key == "tracestate" }
            for (key, value) in trace.sorted(by: { $0.key < $1.key }) { properties.headers[key] = .string(value) }
        }
        if properties.timestamp == nil, properties.headers["x-first-received"] == nil, let firstSeen {
            properties.headers["x-first-received"] = .string(UTCTimestamp.format(firstSeen))
        }
        return properties
    }

    /// Publishes a copy until the broker confirms it, then acknowledges the original. A refusal
    /// that retrying cannot cure (a property the broker rejects, no route) is tried once with
    /// plain properties and once after declaring the queues again; then, or when the worker
    /// stops, the original goes back to the queue. Nothing is published once the original's
    /// connection is gone (the broker delivers it again) — unless `evenIfRedelivered`: that
    /// redelivery may have ended on this run's account (`Message.outlivesItsDelivery`). Returns
    /// whether the copy was confirmed.
    private func publishThenAcknowledge(_ original: AMQPDelivery, to routingKey: String, _ properties: AMQPProperties, _ consumer: AMQPConsumer,
                                        evenIfRedelivered: Bool) async -> Bool {
        var properties = properties
        var delay = Duration.milliseconds(100)
        var simplified = false
        var redeclared = false
        while true {
            // Its connection gone, the broker hands the original out again: a copy now would be a second one
            // (and its place of `concurrency`, kept while the copy is retried, would be taken from that delivery).
            guard consumer.holds(original) || evenIfRedelivered else {
                logger.warning("the message's connection was lost before its copy was confirmed; the broker delivers it again",
                               metadata: ["queue": .string(routingKey)])
                return false
            }
            do {
                try await publisher.publish(routingKey: routingKey, body: original.body, properties: properties)
                consumer.ack(original)
                return true
            } catch {
                switch error {
                case .broker(let code, _) where !simplified && (code == 406 || code == 403):
                    logger.warning("the broker refused a copy's properties; publishing it with plain properties", metadata: ["queue": .string(routingKey), "error": "\(error)"])
                    properties = Self.plainProperties(properties)
                    simplified = true
                    continue
                case .unroutable where !redeclared && settings.declare:
                    logger.warning("no queue for a copy; declaring the queues again", metadata: ["queue": .string(routingKey)])
                    redeclared = true
                    try? await declareQueuesOnce()
                    continue
                case .closed:
                    return false
                default:
                    break
                }
                if error.isPermanent || Task.isCancelled {
                    settleFailures.increment()
                    logger.error("copy not published; the message goes back to the queue", metadata: ["queue": .string(routingKey), "error": "\(error)"])
                    // Not straight back: a refusal that lasts would otherwise go round as fast as the broker answers.
                    if !Task.isCancelled { try? await Task.sleep(for: .seconds(1)) }
                    consumer.nack(original, requeue: true)
                    return false
                }
                settleFailures.increment()
                logger.warning("copy to \(routingKey) not confirmed; retrying", metadata: ["error": "\(error)"])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }

    /// The properties a broker never refuses: content type and encoding, delivery mode, timestamp, headers, ids.
    private static func plainProperties(_ properties: AMQPProperties) -> AMQPProperties {
        AMQPProperties(contentType: properties.contentType, contentEncoding: properties.contentEncoding, headers: properties.headers,
                       deliveryMode: properties.deliveryMode, correlationID: properties.correlationID, expiration: properties.expiration,
                       messageID: properties.messageID, timestamp: properties.timestamp)
    }

    private func declareTopology() async throws {
        var delay = Duration.milliseconds(200)
        while true {
            do {
                try await declareQueuesOnce()
                return
            } catch {
                // A declaration the broker refuses for what it says (406, 403…) stops the start; an error
                // of the broker's own (541 INTERNAL_ERROR: a quorum queue that cannot start yet after a
                // restart) is waited out like a broker that is not up.
                if case .broker(let code, _) = error, code != 541 { throw error }
                if error.isRefusedIdentity { throw error }
                try Task.checkCancellation()
                if stopping.load(ordering: .acquiring) { return }
                logger.warning("cannot declare queues yet; retrying", metadata: ["error": "\(error)"])
                try await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(10))
            }
        }
    }

    private func declareQueuesOnce() async throws(AMQPError) {
        try await topology.declare(on: publisher, logger: logger)
    }
}

/// A time header (`x-first-received`, `x-dead-lettered-at`, `x-replayed-at`): ISO 8601 text (written by this worker) or an AMQP timestamp.
enum HeaderTime {
    static func date(_ value: AMQPValue) -> Date? {
        switch value {
        case .timestamp(let seconds): return Date(timeIntervalSince1970: TimeInterval(seconds))
        case .string(let text): return try? Date(text, strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
        default: return nil
        }
    }
}

extension SourcePlugin {
    /// The `rabbitmq` source plugin.
    public static let rabbitMQ = SourcePlugin(
        name: "rabbitmq",
        summary: "consumes a RabbitMQ queue, or one per priority lane (librabbitmq); retries through delay queues, dead letters to {queue}.dead",
        settings: RabbitMQSettings.schema,
        check: RabbitMQSettings.check,
        make: { context in try RabbitMQSource(settings: context.settings, worker: context.worker, logger: context.logger) }
    )
}

/// Whether every lane's consumer has ended, for `stop` to wait on.
private final class ConsumersEnded: Sendable {
    private let ended = Atomic<Bool>(false)
    private let waiters = Waiters()

    func end() {
        ended.store(true, ordering: .releasing)
        waiters.resumeAll()
    }

    /// Returns once every consumer has ended (at once if they have), or when the task is cancelled.
    func wait() async {
        await waiters.wait(unless: { ended.load(ordering: .acquiring) })
    }
}
