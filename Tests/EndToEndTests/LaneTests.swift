import Foundation
import PipelineKit
import Testing
import TestSupport

/// Priority lanes (SPEC 14), end to end: the built worker consuming the shipped pipeline's three
/// lanes from real RabbitMQ, sharing send slots through real Redis, against a stand-in that
/// enforces Meta's 80/s per number (130429 beyond it).
@Suite(.serialized) struct LaneTests {
    /// Bulk messages queued before the urgent ones: enough for a backlog of 13 s at 80/s.
    static let bulk = 1000

    @Test(arguments: [1, 3])
    func anUrgentMessageIsSentWithinASecondOfItsPublishBehindABulkCampaign(workers count: Int) async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.enforceThroughput(perSecond: 80)
        var workers: [WorkerProcess] = []
        for _ in 0..<count { workers.append(try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"])) }
        try await e2e.inspector.publish((0..<Self.bulk).map(e2e.textMessage), to: "\(e2e.queue).bulk")
        try await poll("the campaign going out", timeout: .seconds(30)) { e2e.server.requests.count >= 100 }
        // One urgent message every 250 ms while the campaign's backlog lasts; each timed from its publish call.
        var published: [String: ContinuousClock.Instant] = [:]
        for number in Self.bulk..<(Self.bulk + 20) {
            published[e2e.recipient(number)] = .now
            try await e2e.inspector.publish([e2e.textMessage(number)], to: "\(e2e.queue).urgent")
            try await Task.sleep(for: .milliseconds(250))
        }
        let total = Self.bulk + 20
        try await poll("\(total) sent", timeout: .seconds(90)) { e2e.server.sentByRecipient.count >= total }
        try await e2e.waitUntilFinished(total, by: workers, timeout: .seconds(30))
        let sent = e2e.server.requests.filter(\.succeeded)
        let latencies = published.compactMap { recipient, at in sent.first { $0.recipient == recipient }.map { $0.arrived - at } }.sorted()
        let campaignLeft = sent.filter { $0.arrived > (published.values.max() ?? .now) }.count
        let throttled = e2e.server.answered(130429)
        print("\(count) worker(s): urgent sent \(latencies.first ?? .zero) … \(latencies.last ?? .zero) after publish (median \(latencies[latencies.count / 2])); \(campaignLeft) bulk sends after the last urgent publish; 130429: \(throttled)")
        #expect(latencies.count == 20)
        #expect(campaignLeft > 0, "the campaign still had a backlog when the last urgent message came")
        #expect(latencies.allSatisfy { $0 <= .seconds(1) }, "every urgent message within 1 s of its publish: \(latencies)")
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 }, "every message sent exactly once")
        #expect(sent.count == total)
        #expect(Double(throttled) < 0.05 * Double(total), "130429 under 5 %: \(throttled)")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered")
        for worker in workers { try await worker.stop() }
        await e2e.cleanUp()
    }

    @Test func anotherSendersNormalMessagesAreNotHeldBehindABulkCampaign() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.enforceThroughput(perSecond: 80)
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"])
        try await e2e.inspector.publish((0..<Self.bulk).map { e2e.message($0, sender: "111") }, to: "\(e2e.queue).bulk")
        try await poll("the campaign going out", timeout: .seconds(30)) { e2e.server.requests.count >= 100 }
        let start = ContinuousClock.now
        try await e2e.publish((Self.bulk..<(Self.bulk + 50)).map { e2e.message($0, sender: "222") })
        try await poll("the 50 of sender 222 sent", timeout: .seconds(30)) { e2e.server.requests.filter { $0.sender == "222" && $0.succeeded }.count >= 50 }
        let last = e2e.server.requests.filter { $0.sender == "222" }.map(\.arrived).max() ?? .now
        let campaignLeft = Self.bulk - e2e.server.requests.filter { $0.sender == "111" && $0.succeeded && $0.arrived <= last }.count
        print("sender 222's 50 normal messages all sent \(last - start) after their publish, \(campaignLeft) of the campaign still to go")
        #expect(last - start <= .seconds(3), "another sender's messages within 3 s of their publish: \(last - start)")
        #expect(campaignLeft > 0, "the campaign still had a backlog then")
        try await e2e.waitUntilFinished(Self.bulk + 50, by: [worker], timeout: .seconds(60))
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 })
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// A letter names its lane, `status` shows it, `replay` puts it back into that lane's queue;
    /// `publish --lane` reaches a lane's queue and refuses, listing them, a lane there is not.
    @Test func aDeadLetterKeepsItsLaneThroughStatusAndReplay() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        // Not valid (no recipient): validate dead-letters it.
        let invalid = Array(#"{"internalId":"\#(e2e.id(1))","type":"text","text":{"body":"no recipient"}}"#.utf8)
        try await e2e.inspector.publish([invalid], to: "\(e2e.queue).urgent")
        try await poll("the letter in .dead") { try await e2e.inspector.depth("\(e2e.queue).dead") == 1 }
        try await worker.stop()
        let status = try TestServices.run(TestServices.executable, ["status", "--format", "json", e2e.id(1)], environment: e2e.environment)
        let report = try JSONValue(parsing: Array(status.output.utf8)).arrayValue?.first
        let copy = report?["dead_letters"]?["copies"]?.arrayValue?.first
        #expect(copy?["lane"]?.stringValue == "urgent", "status names the letter's lane: \(status.output)")
        let replay = try TestServices.run(TestServices.executable, ["replay"], environment: e2e.environment)
        #expect(replay.status == 0, "\(replay.output)")
        let back = try await e2e.inspector.drain("\(e2e.queue).urgent", expecting: 1)
        #expect(back.first?.body == invalid, "replayed into the urgent lane's queue")
        #expect(back.first?.properties.headers["x-lane"] == nil, "the copy's lane is its queue's; the letter's header is not kept")
        #expect(try await e2e.inspector.depth(e2e.queue) == 0)

        let file = FileManager.default.temporaryDirectory.appendingPathComponent("lane-\(UUID().uuidString).json")
        try Data(e2e.textMessage(2)).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let published = try TestServices.run(TestServices.executable, ["publish", "--lane", "bulk", file.path], environment: e2e.environment)
        #expect(published.status == 0 && published.output.contains("\(e2e.queue).bulk"), "\(published.output)")
        #expect(try await e2e.inspector.drain("\(e2e.queue).bulk", expecting: 1).count == 1)
        let unknown = try TestServices.run(TestServices.executable, ["publish", "--lane", "express", file.path], environment: e2e.environment)
        #expect(unknown.status == 2, "an unknown lane is a usage error: \(unknown.output)")
        #expect(unknown.output.contains("lanes: urgent, normal, bulk"), "\(unknown.output)")
        await e2e.cleanUp()
    }
}
