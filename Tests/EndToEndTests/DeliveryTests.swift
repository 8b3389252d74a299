import AMQPClient
import Foundation
import PipelineKit
import RedisClient
import Testing
import TestSupport

/// The worker end to end: built executable, real RabbitMQ and Redis, the Cloud API stand-in.
@Suite(.serialized) struct DeliveryTests {
    @Test func fiveHundredMessagesAreSentOnceAndMarked() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        try await e2e.publish((0..<500).map(e2e.textMessage))
        try await poll("500 requests") { e2e.server.requests.count >= 500 }
        try await poll("queue drained") { try await e2e.inspector.depth(e2e.queue) == 0 }
        try await e2e.waitUntilFinished(500, by: [worker])
        #expect(e2e.server.requests.count == 500)
        #expect(e2e.requestsByRecipient.values.allSatisfy { $0 == 1 })
        for request in e2e.server.requests {
            #expect(request.path == "/v24.0/1055/messages")
            #expect(request.authorization == "Bearer \(EndToEndHarness.token)")
            #expect(request.json?["type"]?.stringValue == "text")
            #expect(request.json?["messaging_product"]?.stringValue == "whatsapp")
        }
        let sample = try #require(e2e.server.requests.first { $0.json?["to"]?.stringValue == "+5511000000007" })
        #expect(sample.json?["text"] == .object(["body": .string("Message 7"), "preview_url": .bool(false)]))
        let redis = e2e.redis()
        try await poll("every key completed") {
            for number in 0..<500 {
                guard let value = try await redis.send(["GET", "idempotency:outbound:\(e2e.id(number))"]).string, value.contains(#""status":"completed""#) else { return false }
            }
            return true
        }
        let value = try #require(try await redis.send(["GET", "idempotency:outbound:\(e2e.id(3))"]).string)
        #expect(value.contains(#""wamid":"wamid.standin."#))
        let ttl = try #require(try await redis.send(["TTL", "idempotency:outbound:\(e2e.id(3))"]).integer)
        #expect(ttl > 86_390 && ttl <= 86_400)
        let metrics = await worker.text("/metrics") ?? ""
        #expect(metrics.contains(#"outbound_messages_total{step="pipeline",outcome="completed"} 500"#))
        #expect(!worker.log.contains(EndToEndHarness.token))
        #expect(!worker.log.contains("Message 7"), "message bodies are never logged")
        let lines = worker.log.split(separator: "\n").map { try? JSONValue(parsing: Array($0.utf8)) }
        #expect(lines.allSatisfy { $0?["ts"]?.stringValue != nil && $0?["level"]?.stringValue != nil }, "every log line is a JSON object")
        let completed = lines.compactMap { $0 }.filter { $0["message"]?.stringValue == "message completed" }
        #expect(completed.count == 500)
        #expect(completed.contains { $0["internalId"]?.stringValue == e2e.id(7) && $0["step"]?.stringValue == "pipeline" })
        #expect(try await worker.stop() == 0)
        await e2e.cleanUp()
    }

    @Test func theTTLComesFromTheEnvironmentWithoutARebuild() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker(extra: ["IDEMPOTENCY_TTL_SECONDS": "120"])
        try await e2e.publish([e2e.textMessage(1)])
        let redis = e2e.redis()
        try await e2e.waitUntilCompleted(e2e.id(1), using: redis)
        let ttl = try await redis.send(["TTL", "idempotency:outbound:\(e2e.id(1))"]).integer ?? 0
        #expect(ttl > 115 && ttl <= 120, "ttl \(ttl)")
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func everyIdPublishedThreeTimesIsSentOnce() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        let ids = 0..<200
        try await e2e.publish(ids.map(e2e.textMessage) + ids.map(e2e.textMessage) + ids.reversed().map(e2e.textMessage))
        try await poll("200 recipients served", timeout: .seconds(60)) { e2e.requestsByRecipient.count >= 200 }
        try await e2e.waitUntilDrained(timeout: .seconds(60))
        try await e2e.waitUntilFinished(600, by: [worker])
        #expect(e2e.server.requests.count == 200)
        #expect(e2e.requestsByRecipient.values.allSatisfy { $0 == 1 })
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        let metrics = await worker.text("/metrics") ?? ""
        #expect(metrics.contains("outbound_duplicates_total"))
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func invalidMessagesAreDeadLetteredAndValidOnesSent() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        var bodies: [[UInt8]] = []
        for number in 0..<50 {
            bodies.append(e2e.textMessage(number))
            if number % 5 == 0 { bodies.append(Array(#"{"internalId":"\#(e2e.id(1000 + number))","to":"12","type":"text","text":{"body":"x"}}"#.utf8)) }
        }
        bodies.append([0xFF, 0x00, 0xFE])
        bodies.append(Array("not json at all".utf8))
        try await e2e.publish(bodies)
        try await poll("50 valid sent") { e2e.server.requests.count >= 50 }
        let dead = try await e2e.inspector.drain("\(e2e.queue).dead", expecting: 12)
        #expect(dead.count == 12)
        for letter in dead {
            #expect(letter.properties.headers["x-error-step"] == .string("validate"))
            #expect(letter.properties.headers["x-attempts"]?.intValue == 1)
            #expect(letter.properties.headers["x-error"]?.stringValue?.isEmpty == false)
        }
        #expect(dead.contains { $0.body == [0xFF, 0x00, 0xFE] }, "the body is kept as it was")
        #expect(e2e.server.requests.count == 50)
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func threeWorkersShareOneQueueAndSendEachIdOnce() async throws {
        let e2e = try await EndToEndHarness()
        let workers = [try await e2e.startWorker(), try await e2e.startWorker(), try await e2e.startWorker()]
        let once = (0..<1000).map(e2e.textMessage)
        let twice = (1000..<1500).map(e2e.textMessage)
        try await e2e.publish(twice + once + twice.reversed())
        try await poll("1500 recipients", timeout: .seconds(90)) { e2e.requestsByRecipient.count >= 1500 }
        try await e2e.waitUntilDrained(timeout: .seconds(60))
        try await e2e.waitUntilFinished(2000, by: workers)
        #expect(e2e.server.requests.count == 1500)
        for worker in workers {
            try await worker.stop()
        }
        await e2e.cleanUp()
    }
}
