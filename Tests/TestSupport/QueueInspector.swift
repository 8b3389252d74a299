import AMQPClient
import Foundation
import Logging

/// Looks into queues of the test broker: depth, and the messages of a queue with their headers.
public final class QueueInspector: Sendable {
    public let publisher: AMQPPublisher
    private let urls: [AMQPURL]

    /// An inspector of the test broker, or of the brokers at `urls` (a cluster's nodes, tried in turn).
    public init(urls texts: [String] = [TestServices.rabbitURL]) throws {
        urls = try texts.map { try AMQPURL($0) }
        var logger = Logger(label: "test.inspector")
        logger.logLevel = .critical
        publisher = AMQPPublisher(urls: urls, logger: logger)
        publisher.start()
    }

    deinit {
        publisher.stop()
    }

    /// Ready messages in a queue. Retries while the broker does not answer (it may be
    /// restarting) and throws after 30 s: a failed look-up must never read as "empty".
    public func depth(_ queue: String) async throws -> Int {
        let deadline = ContinuousClock.now + .seconds(30)
        while true {
            do {
                return try await publisher.messageCount(queue)
            } catch {
                guard ContinuousClock.now < deadline else { throw TestFailure("cannot read the depth of \(queue): \(error)") }
                try await Task.sleep(for: .milliseconds(100))
            }
        }
    }

    /// The depth of `queue` once it reaches `expected`, or the last depth read when `timeout` passes
    /// first. Use it for any count taken after a connection that held messages unacknowledged went
    /// away (a consumer stopped, a worker or a `replay` stopped or killed, a `status` scan ended): the
    /// broker puts those messages back a moment after it notices the close, not when the process is
    /// gone, so one read right then races it. A lost or duplicated message still shows, as the depth returned.
    public func depth(_ queue: String, settlingAt expected: Int, timeout: Duration = .seconds(10)) async throws -> Int {
        var depth = -1
        try? await poll("depth \(expected) of \(queue)", timeout: timeout) {
            depth = try await self.depth(queue)
            return depth == expected
        }
        return depth
    }

    /// Publishes JSON bodies to a queue (declaring it as a classic queue unless told not to), confirmed.
    public func publish(_ bodies: [[UInt8]], to queue: String, headers: AMQPTable = AMQPTable(), properties base: AMQPProperties = .persistentJSON, declare: Bool = true) async throws {
        if declare { try await publisher.declare(AMQPQueueDeclaration(name: queue)) }
        var withHeaders = base
        withHeaders.headers = headers
        let properties = withHeaders
        let batch = 500
        for start in stride(from: 0, to: bodies.count, by: batch) {
            let slice = bodies[start..<min(start + batch, bodies.count)]
            let publisher = self.publisher
            try await withThrowingTaskGroup(of: Void.self) { group in
                for body in slice {
                    group.addTask { try await publisher.publish(routingKey: queue, body: body, properties: properties) }
                }
                try await group.waitForAll()
            }
        }
    }

    /// Takes every ready message out of `queue` (acknowledging them) and returns them.
    public func drain(_ queue: String, expecting count: Int, timeout: Duration = .seconds(20)) async throws -> [AMQPDelivery] {
        var logger = Logger(label: "test.drain")
        logger.logLevel = .critical
        let (consumer, events) = AMQPConsumer.streaming(urls: urls, queue: queue, prefetch: 500, logger: logger)
        consumer.start()
        defer { consumer.stop() }
        var deliveries: [AMQPDelivery] = []
        let collector = Task {
            var collected: [AMQPDelivery] = []
            for await event in events {
                if case .delivery(let delivery) = event {
                    consumer.ack(delivery)
                    collected.append(delivery)
                    if collected.count >= count { break }
                }
            }
            return collected
        }
        let timer = Task {
            try await Task.sleep(for: timeout)
            collector.cancel()
        }
        deliveries = await collector.value
        timer.cancel()
        return deliveries
    }

    /// Deletes test queues.
    public func delete(_ queues: [String]) async {
        for queue in queues { try? await publisher.delete(queue) }
    }
}
