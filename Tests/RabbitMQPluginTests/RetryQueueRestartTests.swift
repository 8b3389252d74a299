import AMQPClient
import Foundation
import Logging
import PipelineKit
import RabbitMQPlugin
import Testing
import TestSupport

/// Quorum retry queues whose messages expire while the broker restarts must hand them back to their
/// sources within seconds of the restart. RabbitMQ before 4.3 recovers queues before exchanges: a
/// queue's dead-letter worker that starts first finds no exchange and holds what expired until its
/// publisher-confirm timeout (180 s by default; the test broker, like the README's production advice,
/// sets 5 s). Seen in `rabbitMQRestartMidStreamResumesAndLosesNothing`: 573 paced waits held in
/// `retry.2` for over two minutes after a restart. The race is per queue, so many queues take part.
@Suite(.serialized) struct RetryQueueRestartTests {
    @Test func messagesThatExpireDuringARestartComeBackPromptly() async throws {
        var logger = Logger(label: "test.restart")
        logger.logLevel = .critical
        let inspector = try QueueInspector()
        let publisher = AMQPPublisher(urls: [try AMQPURL(TestServices.rabbitURL)], logger: logger)
        publisher.start()
        let topologies = (0..<24).map { _ in
            QueueTopology(queue: uniqueName("test.restart"), type: .classic, deliveryLimit: 20, retryDelays: [.seconds(1)], jitter: 0)
        }
        for topology in topologies {
            try await topology.declare(on: publisher, logger: logger)
            try await inspector.publish((0..<25).map { Array(#"{"n":\#($0)}"#.utf8) }, to: "\(topology.queue).retry.1", declare: false)
        }
        publisher.stop()
        // The restart takes seconds: every message's 1.2 s expires while the node is down or booting.
        try TestServices.services("restart", "rabbitmq")
        let restarted = ContinuousClock.now
        var back: [String: Int] = [:]
        do {
            try await poll("every message back in its source queue", timeout: .seconds(40)) {
                back = (try? TestServices.messagesIncludingUnacknowledged()) ?? [:]
                // At least once (SPEC 11): a dead-letter whose confirm the stopping broker lost is
                // forwarded again after the restart, so a source may hold a copy more than it was sent.
                return topologies.allSatisfy { back[$0.queue, default: 0] >= 25 && back["\($0.queue).retry.1"] == 0 }
            }
        } catch {
            let stuck = topologies.filter { back[$0.queue, default: 0] < 25 || back["\($0.queue).retry.1"] != 0 }
                .map { "\($0.queue): \(back[$0.queue] ?? -1), retry.1: \(back["\($0.queue).retry.1"] ?? -1), dead: \(back[$0.deadQueue] ?? -1)" }
            Issue.record("still in their retry queues \(ContinuousClock.now - restarted) after the restart: \(stuck)")
        }
        // The retry queues stay (deleting quorum queues right before a restart crashed 3.10's dead-letter workers).
        await inspector.delete(topologies.flatMap { [$0.queue, $0.deadQueue] })
    }
}
