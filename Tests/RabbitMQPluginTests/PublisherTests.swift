import AMQPClient
import Foundation
import Logging
import Testing
import TestSupport

/// The confirmed publisher against the real broker.
@Suite(.serialized) struct PublisherTests {
    /// Publishes made together are confirmed together, often by one `multiple` ack; the broker
    /// returns an unroutable one just before that ack. Each return must fail its own publish:
    /// blamed on another, the unroutable copy counts as confirmed (and its original is lost),
    /// while a good one is retried.
    @Test func aReturnedPublishFailsExactlyThatPublish() async throws {
        let inspector = try QueueInspector()
        let queue = uniqueName("returns")
        try await inspector.publisher.declare(AMQPQueueDeclaration(name: queue))
        var logger = Logger(label: "test.publisher")
        logger.logLevel = .critical
        let publisher = AMQPPublisher(urls: [try AMQPURL(TestServices.rabbitURL)], logger: logger)
        publisher.start()
        defer { publisher.stop() }
        var routed = 0
        for round in 0..<20 {
            let unroutable = Set((0..<20).map { _ in Int.random(in: 0..<60) })
            let failed = try await withThrowingTaskGroup(of: Int?.self) { group in
                for index in 0..<60 {
                    group.addTask {
                        let target = unroutable.contains(index) ? "\(queue).nowhere" : queue
                        do {
                            try await publisher.publish(routingKey: target, body: Array("\(round)-\(index)".utf8), properties: .persistentJSON)
                            return nil
                        } catch let error as AMQPError {
                            guard case .unroutable = error else { throw error }
                            return index
                        }
                    }
                }
                return try await group.reduce(into: Set<Int>()) { if let index = $1 { $0.insert(index) } }
            }
            #expect(failed == unroutable, "round \(round): the returned publishes are exactly those without a queue")
            routed += 60 - unroutable.count
        }
        #expect(try await inspector.depth(queue) == routed, "every publish reported confirmed is in the queue")
        await inspector.delete([queue])
    }
}
