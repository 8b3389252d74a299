import AMQPClient
import Foundation
import PipelineKit
import RabbitMQPlugin
import Synchronization
import Testing
import TestSupport

/// The `rabbitmq` source against the real broker of `scripts/test`.
@Suite(.serialized) struct RabbitMQSourceTests {
    @Test func tenThousandMessagesRoundTripOnce() async throws {
        let harness = try SourceHarness()
        let source = try harness.source("prefetch: 64\nconcurrency: 32\n")
        try await harness.inspector.publish(bodies(10_000, prefix: "rt"), to: harness.queue)
        let handler = RecordingHandler()
        let running = RunningSource(source, handler)
        try await poll("10,000 deliveries", timeout: .seconds(120)) { handler.all.count >= 10_000 }
        try await poll("the queue to be empty and acknowledged") { try await harness.inspector.depth(harness.queue) == 0 }
        await running.stop()
        #expect(handler.all.count == 10_000)
        #expect(handler.distinctIDs.count == 10_000)
        #expect(try await harness.inspector.depth(harness.queue) == 0, "every message acknowledged")
        await harness.cleanUp(source)
    }

    @Test func retriesWaitTheBackoffAndCountAttemptsThenDeadLetter() async throws {
        let harness = try SourceHarness()
        let source = try harness.source("retry: { max_attempts: 3, backoff: [200ms] }\n")
        let handler = RecordingHandler { message in
            let id = message.internalID ?? ""
            if id == "flaky", message.attempt < 3 {
                return .retry(after: .milliseconds(200), attempt: message.attempt + 1, step: "dispatch", reason: "503")
            }
            if id == "doomed" {
                return message.attempt < 3
                    ? .retry(after: .milliseconds(200), attempt: message.attempt + 1, step: "dispatch", reason: "503")
                    : .deadLetter(step: "dispatch", reason: "gave up after 3 attempts: 503")
            }
            return .ack(.completed)
        }
        let running = RunningSource(source, handler)
        try await harness.inspector.publish([Array(#"{"internalId":"flaky"}"#.utf8), Array(#"{"internalId":"doomed"}"#.utf8)], to: harness.queue)
        try await poll("three deliveries of each") { handler.all.filter { $0.id == "flaky" }.count == 3 && handler.all.filter { $0.id == "doomed" }.count == 3 }
        let flaky = handler.all.filter { $0.id == "flaky" }
        #expect(flaky.map(\.attempt) == [1, 2, 3])
        for (earlier, later) in zip(flaky, flaky.dropFirst()) {
            #expect(later.at - earlier.at >= .milliseconds(200), "retry came after \(later.at - earlier.at)")
        }
        let dead = try await harness.inspector.drain(source.topology.deadQueue, expecting: 1)
        await running.stop()
        let letter = try #require(dead.first)
        #expect(String(decoding: letter.body, as: UTF8.self) == #"{"internalId":"doomed"}"#)
        #expect(letter.properties.headers["x-error-step"] == .string("dispatch"))
        #expect(letter.properties.headers["x-error"]?.stringValue?.contains("gave up after 3 attempts") == true)
        #expect(letter.properties.headers["x-attempts"]?.intValue == 3)
        #expect(letter.properties.contentType == "application/json")
        #expect(try await harness.inspector.depth(harness.queue) == 0)
        await harness.cleanUp(source)
    }

    @Test func requeueDoesNotUseAnAttemptAndHugeBodiesSurvive() async throws {
        let harness = try SourceHarness()
        let source = try harness.source("retry: { max_attempts: 2, backoff: [100ms] }\n")
        let handler = RecordingHandler { message in
            if message.body.count > 100_000 { return .deadLetter(step: "validate", reason: "body is \(message.body.count) bytes, at most 65536") }
            return message.attempt == 1 && (message.internalID == "held") && !message.body.isEmpty
                ? .requeue(after: .milliseconds(100), step: "idempotency", reason: "in flight", pauseSource: false)
                : .ack(.completed)
        }
        let running = RunningSource(source, handler)
        var huge = Array(#"{"internalId":"huge","pad":""#.utf8)
        huge += [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        huge += Array(#""}"#.utf8)
        try await harness.inspector.publish([Array(#"{"internalId":"held"}"#.utf8), huge, [0xFF, 0xFE, 0xFD]], to: harness.queue)
        try await poll("held twice, huge and garbage once") { handler.all.filter { $0.id == "held" }.count >= 2 && handler.all.count >= 4 }
        // requeue republishes with the same attempt count: the second delivery is still attempt 1.
        #expect(handler.all.filter { $0.id == "held" }.map(\.attempt) == [1, 1])
        let dead = try await harness.inspector.drain(source.topology.deadQueue, expecting: 1)
        await running.stop()
        #expect(dead.first?.body.count == huge.count)
        await harness.cleanUp(source)
    }

    @Test func brokerRestartMidStreamLosesNothing() async throws {
        let harness = try SourceHarness()
        let source = try harness.source("prefetch: 32\nconcurrency: 8\n")
        try await harness.inspector.publish(bodies(3000, prefix: "restart"), to: harness.queue)
        let handler = RecordingHandler { _ in
            try? await Task.sleep(for: .milliseconds(2))
            return .ack(.completed)
        }
        let running = RunningSource(source, handler)
        try await poll("some progress") { handler.all.count >= 300 }
        try TestServices.services("restart", "rabbitmq")
        try await poll("all 3000 ids after the restart", timeout: .seconds(120)) { handler.distinctIDs.count == 3000 }
        try await poll("the queue drained") { try await harness.inspector.depth(harness.queue) == 0 }
        await running.stop()
        #expect(handler.distinctIDs.count == 3000, "lost: \(3000 - handler.distinctIDs.count)")
        await harness.cleanUp(source)
    }

    @Test func deadLetterIsConfirmedBeforeTheOriginalIsAcknowledged() async throws {
        let harness = try SourceHarness()
        let source = try harness.source()
        let brokerStopped = Atomic<Bool>(false)
        let handler = RecordingHandler { message in
            if message.internalID == "victim", brokerStopped.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                // The broker goes away between the decision and its publish + ack (once: the
                // redelivery of the unacknowledged original must not stop it again).
                try? TestServices.services("stop", "rabbitmq")
                Task.detached { try? TestServices.services("start", "rabbitmq") }
            }
            return .deadLetter(step: "validate", reason: "bad")
        }
        let running = RunningSource(source, handler)
        try await harness.inspector.publish([Array(#"{"internalId":"victim"}"#.utf8)], to: harness.queue)
        try await poll("the broker back and the message dead-lettered", timeout: .seconds(90)) {
            try await harness.inspector.depth(source.topology.deadQueue) >= 1
        }
        try await poll("the original acknowledged or redelivered and handled", timeout: .seconds(60)) {
            (try? await harness.inspector.publisher.messageCount(harness.queue)) == 0
        }
        await running.stop()
        let inDead = try await harness.inspector.publisher.messageCount(source.topology.deadQueue)
        #expect(inDead >= 1, "the message is in the dead-letter queue, never gone")
        #expect(handler.all.allSatisfy { $0.id == "victim" })
        await harness.cleanUp(source)
    }

    @Test func unreachableBrokerAndWrongPasswordAreReportedClearly() async throws {
        let harness = try SourceHarness()
        let unreachable = try harness.source(url: "amqp://guest:guest@127.0.0.1:1/%2F")
        let task = Task { try await unreachable.run(handler: { RecordingHandler() }) }
        try await Task.sleep(for: .milliseconds(300))
        unreachable.beginShutdown()
        task.cancel()
        _ = await task.result

        let url = try AMQPURL(TestServices.rabbitURL)
        let consumer = AMQPConsumer(urls: [try AMQPURL("amqp://guest:wrong-password@\(url.host):\(url.port)/%2F")], queue: harness.queue, prefetch: 1, logger: SourceHarness.logger)
        consumer.start()
        try await poll("a login error") { consumer.status.lastError != nil }
        let error = consumer.status.lastError ?? ""
        consumer.stop()
        #expect(error.contains("login refused"), "\(error)")
        #expect(!error.contains("wrong-password"))

        let refused = AMQPConsumer(urls: [try AMQPURL("amqp://guest:guest@127.0.0.1:1/%2F")], queue: harness.queue, prefetch: 1, logger: SourceHarness.logger)
        refused.start()
        try await poll("a connection error") { refused.status.lastError != nil }
        let refusal = refused.status.lastError ?? ""
        refused.stop()
        #expect(refusal.contains("cannot connect to 127.0.0.1:1"), "\(refusal)")
    }

    @Test func aListOfBrokerURLsIsTriedInTurn() async throws {
        let harness = try SourceHarness()
        let listed = try TestSupport.settings("url: [\"amqp://guest:guest@127.0.0.1:1/%2F\", \"\(TestServices.rabbitURL)\"]\nqueue: \(harness.queue)\n", schema: SourcePlugin.rabbitMQ.settings)
        let failover = try RabbitMQSource(settings: listed, retry: RetryPolicy(), logger: SourceHarness.logger)
        let handler = RecordingHandler()
        let running = RunningSource(failover, handler)
        try await harness.inspector.publish(bodies(3, prefix: "failover"), to: harness.queue)
        try await poll("deliveries through the second URL") { handler.all.count >= 3 }
        await running.stop()
        await harness.cleanUp(failover)
    }

    @Test func quorumQueuesAreDeclaredWithADeliveryLimit() async throws {
        let harness = try SourceHarness()
        let source = try harness.source("queue_type: quorum\ndelivery_limit: 3\n")
        let handler = RecordingHandler()
        let running = RunningSource(source, handler)
        try await poll("the source to declare its quorum queue") { await source.status().connected }
        try await harness.inspector.publish(bodies(5, prefix: "quorum"), to: harness.queue, declare: false)
        try await poll("5 deliveries from the quorum queue") { handler.all.count >= 5 }
        await running.stop()
        // Declaring it again as classic conflicts: proof that the broker made it a quorum queue.
        await #expect(throws: AMQPError.self) { try await harness.inspector.publisher.declare(AMQPQueueDeclaration(name: harness.queue)) }
        await harness.cleanUp(source)
    }

    @Test func urlsParseWithVhostsAndHidePasswords() throws {
        let url = try AMQPURL("amqp://user:p%40ss@broker.example:5673/%2F")
        #expect(url.host == "broker.example")
        #expect(url.port == 5673)
        #expect(url.password == "p@ss")
        #expect(url.virtualHost == "/")
        #expect(!url.description.contains("p@ss"))
        #expect(try AMQPURL("amqps://h/vh").tls)
        #expect(try AMQPURL("amqps://h/vh").port == 5671)
        #expect(try AMQPURL("amqp://h/vh").virtualHost == "vh")
        #expect(throws: AMQPError.self) { try AMQPURL("http://h/") }
    }

    @Test func topologyDeclaresRetryQueuesThatReturnToTheSource() {
        let topology = QueueTopology(queue: "q", type: .quorum, deliveryLimit: 7, retryDelays: [.seconds(5), .seconds(1), .seconds(5)], jitter: 0.2)
        let names = topology.declarations.map(\.name)
        #expect(names == ["q", "q.retry.1", "q.retry.2", "q.dead"])
        #expect(topology.declarations[0].arguments["x-delivery-limit"] == .int(7))
        #expect(topology.declarations[0].arguments["x-dead-letter-routing-key"] == .string("q.dead"))
        #expect(topology.declarations[1].arguments["x-message-ttl"] == .int(1200))
        #expect(topology.declarations[1].arguments["x-dead-letter-routing-key"] == .string("q"))
        #expect(topology.route(delay: .seconds(1), random: 0).queue == "q.retry.1")
        #expect(topology.route(delay: .seconds(1), random: 0.999).expirationMilliseconds <= 1200)
        #expect(topology.route(delay: .seconds(3), random: 0) == ("q.retry.2", 3000))
        #expect(topology.route(delay: .seconds(60), random: 0).queue == "q.retry.2")
    }
}
