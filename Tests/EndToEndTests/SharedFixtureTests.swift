import Foundation
import PipelineKit
import RedisClient
import Testing
import TestSupport

/// The cases of `pipelines/tests/shared.yaml` run through the real worker on real services:
/// the same file `outbound-worker test` runs with stand-ins must give the same outcomes here.
@Suite(.serialized) struct SharedFixtureTests {
    struct Case {
        var name: String
        var input: JSONValue
        var outcome: String
        var status: Int?
        var code: Int?
    }

    static func cases() throws -> [Case] {
        let path = TestServices.repository.appendingPathComponent("pipelines/tests/shared.yaml").path
        let root = try YAMLDocumentReader.read(path: path)
        return (root["cases"]?.items ?? []).compactMap { node in
            guard let input = node["input"]?.jsonValue, let outcome = node["expect"]?["outcome"]?.scalar else { return nil }
            return Case(name: node["name"]?.scalar ?? "", input: input, outcome: outcome,
                        status: node["whatsapp"]?["status"]?.scalar.flatMap(Int.init), code: node["whatsapp"]?["error_code"]?.scalar.flatMap(Int.init))
        }
    }

    @Test func sharedCasesGiveTheSameOutcomesOnRealServices() async throws {
        let cases = try Self.cases()
        #expect(cases.count >= 5)
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        let run = uniqueName("shared")
        let redis = e2e.redis()
        for testCase in cases {
            guard case .object(var object) = testCase.input else { continue }
            if let id = object["internalId"]?.stringValue { object["internalId"] = .string("\(run)-\(id)") }
            let id = object["internalId"]?.stringValue ?? ""
            if let status = testCase.status {
                e2e.server.answer { _, _ in .error(status: status, code: testCase.code, message: "scripted") }
            } else {
                e2e.server.answer { _, _ in .success }
            }
            let requestsBefore = e2e.server.requests.count
            let deadBefore = try await e2e.inspector.depth("\(e2e.queue).dead")
            let finishedBefore = try #require(await EndToEndHarness.finished(by: [worker]), "the worker's /metrics")
            try await e2e.publish([JSONValue.object(object).encodedBytes()])
            // Until the worker has finished with the message (decided, not just taken from the queue):
            // nothing more is sent for it after that.
            try await poll("`\(testCase.name)` handled") {
                guard let finished = await EndToEndHarness.finished(by: [worker]), finished > finishedBefore else { return false }
                let depth = try await e2e.inspector.depth(e2e.queue)
                let dead = try await e2e.inspector.depth("\(e2e.queue).dead")
                let key = try await redis.send(["GET", "idempotency:outbound:\(id)"]).string
                switch testCase.outcome {
                case "completed": return key?.contains("completed") == true && depth == 0
                case "dead_letter": return dead == deadBefore + 1
                case "duplicate": return depth == 0
                default: return true
                }
            }
            let sent = e2e.server.requests.count - requestsBefore
            switch testCase.outcome {
            case "completed":
                #expect(sent == 1, "\(testCase.name)")
            case "duplicate":
                #expect(sent == 0, "\(testCase.name)")
            case "dead_letter":
                #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == deadBefore + 1, "\(testCase.name)")
            default:
                Issue.record("shared.yaml may only use completed, duplicate and dead_letter: \(testCase.name)")
            }
        }
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func redisOutageUnderFailClosedSendsNothingAndLosesNothing() async throws {
        let e2e = try await EndToEndHarness()
        try (EndToEndHarness.variant + "\n    degradation: fail_closed\n").write(to: e2e.folder.appendingPathComponent("outbound.e2e.yaml"), atomically: true, encoding: .utf8)
        let redis = try ScratchRedis()
        try await redis.start()
        e2e.redisPort = redis.port
        let worker = try await e2e.startWorker()
        try await redis.stop()
        try await e2e.publish((0..<20).map(e2e.textMessage))
        try await poll("messages held while Redis is down") {
            let metrics = await worker.text("/metrics") ?? ""
            return metrics.contains(#"outbound_messages_total{step="idempotency",outcome="requeue"}"#)
        }
        try await Task.sleep(for: .seconds(1))
        #expect(e2e.server.requests.isEmpty, "nothing is sent without dedup under fail_closed")
        try await redis.start()
        try await poll("all 20 sent once Redis is back", timeout: .seconds(60)) { e2e.requestsByRecipient.count >= 20 }
        try await e2e.waitUntilFinished(20, by: [worker])
        #expect(e2e.server.requests.count == 20)
        try await worker.stop()
        try await redis.stop()
        await e2e.cleanUp()
    }

    @Test func publishCommandSendsJSONLinesConfirmed() async throws {
        let e2e = try await EndToEndHarness()
        let file = e2e.folder.appendingPathComponent("batch.jsonl")
        let lines = (0..<250).map { String(decoding: e2e.textMessage($0), as: UTF8.self) }.joined(separator: "\n") + "\n\n"
        try lines.write(to: file, atomically: true, encoding: .utf8)
        let single = e2e.folder.appendingPathComponent("one.json")
        try "{\n  \"internalId\": \"x\",\n  \"to\": \"+5511987654321\"\n}\n".write(to: single, atomically: true, encoding: .utf8)
        let result = try TestServices.run(TestServices.executable, ["publish", file.path, single.path], environment: e2e.environment)
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("published 251 message(s) to \(e2e.queue)"))
        // In the file's order (audit: 500 publishes at once reached the broker in any order; SPEC 14 serves a lane first come, first served).
        let queued = try await e2e.inspector.drain(e2e.queue, expecting: 251)
        #expect(queued.map(\.body) == (0..<250).map { e2e.textMessage($0) } + [Array(try Data(contentsOf: single))], "published in order")
        let bad = e2e.folder.appendingPathComponent("bad.jsonl")
        try "{\"a\":1}\n\nnot json\n".write(to: bad, atomically: true, encoding: .utf8)
        let refused = try TestServices.run(TestServices.executable, ["publish", bad.path], environment: e2e.environment)
        #expect(refused.status == 1)
        #expect(refused.output.contains("bad.jsonl:3: not valid JSON"), "the file's line: \(refused.output)")
        // A broker that cannot be reached is exit 3 (SPEC 2), as a refusal is: the declaration before the publishes exited 1.
        let unreachable = try TestServices.run(TestServices.executable, ["publish", file.path],
                                               environment: e2e.environment.merging(["RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:\(freePort())/%2F"]) { $1 })
        #expect(unreachable.status == 3, "\(unreachable.output)")
        // The broker refusing them is no fault of the input (exit 1 before, and no word of how far it got).
        let policy = try await TestServices.applyPolicy(TestServices.refuseEveryPublish, to: e2e.queue)
        defer { TestServices.clearPolicy(policy) }
        let full = try TestServices.run(TestServices.executable, ["publish", file.path], environment: e2e.environment)
        #expect(full.status == 3, "\(full.output)")
        #expect(full.output.contains("the first 0 of 250 document(s) were confirmed"), "\(full.output)")
        await e2e.cleanUp()
    }
}
