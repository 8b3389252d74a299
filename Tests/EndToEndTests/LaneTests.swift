import Foundation
import PipelineKit
import Testing
import TestSupport

/// Priority lanes (SPEC 14), end to end: the built worker consuming the shipped pipeline's three
/// lanes from real RabbitMQ, sharing send slots through real Redis, against a stand-in that
/// enforces Meta's 80/s per number (130429 beyond it).
@Suite(.serialized) struct LaneTests {
    /// Bulk messages queued before the urgent ones: enough for a backlog of 13 s at 80/s
    /// (`LANE_TEST_BULK` sets another figure, e.g. the 4,000 of the README's figures).
    static let bulk = Int(ProcessInfo.processInfo.environment["LANE_TEST_BULK"] ?? "") ?? 1000
    /// Time enough for `messages` of one sender at 80/s, with room for a loaded machine.
    static func timeout(_ messages: Int) -> Duration { .seconds(messages / 40 + 30) }

    /// The test variant with the shipped pipeline's delay queues (1 s … 2 min) and claim lease (2 min):
    /// a campaign's backlog waits its turn in the delay queues (one trip each) instead of going round
    /// the test variant's 1 s queue, and a claimed message may wait in memory as long as it would in
    /// production. The harness's 3 s lease keeps it in memory only about a second between its claim
    /// and its send (`Step.heldFor`: the lease less the send timeout); with three debug workers at
    /// full load the first urgent messages sometimes took longer and went round a delay queue (the
    /// workers' logs: "waiting through the source"), sent 0.86–1.2 s after their publish — right for
    /// that lease, but a figure of it, not of lanes.
    static let shippedTimings = EndToEndHarness.variant.replacingOccurrences(of: "backoff: [300ms, 1s]", with: "backoff: [1s, 5s, 30s, 2m]")
        .replacingOccurrences(of: "lease: 3s", with: "lease: 2m")

    @Test(arguments: [1, 3])
    func anUrgentMessageIsSentWithinASecondOfItsPublishBehindABulkCampaign(workers count: Int) async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.enforceThroughput(perSecond: 80)
        try e2e.writeVariant(Self.shippedTimings)
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
        try await poll("\(total) sent", timeout: Self.timeout(total)) { e2e.server.sentByRecipient.count >= total }
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
        try e2e.writeVariant(Self.shippedTimings)
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
        try await e2e.waitUntilFinished(Self.bulk + 50, by: [worker], timeout: Self.timeout(Self.bulk))
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

    /// `max_share: 0.5` on urgent, with urgent and bulk messages of one sender both waiting: bulk
    /// gets about half the sends, not none. It may get more than half: a slot whose urgent message is
    /// not back in time (a starved debug worker on a busy machine) goes to the bulk message that is,
    /// not lost — 61 % once in CI; 51–55 % usually; 53 % with release builds at 2,000 + 2,000 (README).
    /// Printed, not asserted: urgent's busiest 5 s. The cap holds while bulk has messages in the
    /// worker; a message back late from a delay queue (behind its lane's backlog) leaves the slot to
    /// the other lane: 49–51 % at this size, 58–64 % at `LANE_TEST_BULK=4000` (README).
    @Test func maxShareLeavesTheOtherLaneItsShare() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.enforceThroughput(perSecond: 80)
        let lanes = """
                lanes:
                  - { name: urgent, queue: "${OUTBOUND_QUEUE}.urgent", max_share: 0.5 }
                  - { name: normal, queue: "${OUTBOUND_QUEUE}" }
                  - { name: bulk, queue: "${OUTBOUND_QUEUE}.bulk" }
            """
        try e2e.writeVariant(Self.shippedTimings.replacingOccurrences(of: "    prefetch: 64", with: "    prefetch: 64\n" + lanes))
        let each = Self.bulk / 2
        try await e2e.inspector.publish((0..<each).map(e2e.textMessage), to: "\(e2e.queue).urgent")
        try await e2e.inspector.publish((each..<(2 * each)).map(e2e.textMessage), to: "\(e2e.queue).bulk")
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"])
        try await poll("\(2 * each) sent", timeout: Self.timeout(2 * each)) { e2e.server.sentByRecipient.count >= 2 * each }
        try await e2e.waitUntilFinished(2 * each, by: [worker], timeout: .seconds(30))
        let urgent = Set((0..<each).map(e2e.recipient))
        let sent = e2e.server.requests.filter(\.succeeded).sorted { $0.arrived < $1.arrived }
        // While both lanes had messages: until the first lane ran out.
        let lastUrgent = sent.lastIndex { urgent.contains($0.recipient) } ?? 0
        let lastBulk = sent.lastIndex { !urgent.contains($0.recipient) } ?? 0
        let bothWaiting = sent[..<min(lastUrgent, lastBulk)]
        let bulkShare = Double(bothWaiting.count { !urgent.contains($0.recipient) }) / Double(max(1, bothWaiting.count))
        let firstBulk = bothWaiting.firstIndex { !urgent.contains($0.recipient) } ?? bothWaiting.startIndex
        let capped = Array(bothWaiting[firstBulk...])
        var busiestUrgentShare = 0.0
        for start in capped.indices {
            let end = capped[start].arrived + .seconds(5)
            guard let last = capped.last, last.arrived >= end else { break }
            let window = capped[start...].prefix { $0.arrived < end }
            busiestUrgentShare = max(busiestUrgentShare, Double(window.count { urgent.contains($0.recipient) }) / Double(window.count))
        }
        print("max_share 0.5 on urgent: bulk took \(Int((bulkShare * 100).rounded())) % of the \(bothWaiting.count) sends while both lanes had messages; urgent's share of any 5 s at most \(Int((busiestUrgentShare * 100).rounded())) %")
        #expect(bulkShare > 0.4 && bulkShare < 0.7, "bulk gets its share, and urgent still most of its own: \(bulkShare)")
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 })
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// Several senders, each with a backlog in one lane, each paced at its own limit, in any
    /// one-second window within it (one worker) or within 10 % of it (three sharing it). How close each comes to its
    /// ideal span is printed (a figure for the README, left to the machine's load, not bounded here).
    @Test(arguments: [(senders: 2, workers: 1), (senders: 10, workers: 1), (senders: 2, workers: 3), (senders: 10, workers: 3)])
    func backloggedSendersEachGetTheirRate(_ setup: (senders: Int, workers: Int)) async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.enforceThroughput(perSecond: 80)
        let perSender = Int(ProcessInfo.processInfo.environment["LANE_TEST_PER_SENDER"] ?? "") ?? 300
        // The shipped claim lease (2 min): the harness's 3 s lets a claimed message wait in memory only
        // about a second, less than a backlog of three workers' prefetch takes to be sent, so most of it would go
        // round the delay queues — safe, and a figure of that lease, not of pacing.
        let prefetch = ProcessInfo.processInfo.environment["LANE_TEST_PREFETCH"] ?? "64"
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "    prefetch: 64", with: "    prefetch: \(prefetch)")
            .replacingOccurrences(of: "lease: 3s", with: "lease: 2m"))
        let senders = (0..<setup.senders).map { String(300 + $0) }
        // Interleaved, as a campaign of several senders arrives; all queued before the workers start.
        let bodies = (0..<(perSender * setup.senders)).map { e2e.message($0, sender: senders[$0 % setup.senders]) }
        try await e2e.inspector.publish(bodies, to: "\(e2e.queue).bulk")
        var workers: [WorkerProcess] = []
        for _ in 0..<setup.workers { workers.append(try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"])) }
        try await poll("\(bodies.count) sent", timeout: .seconds(120)) { e2e.server.sentByRecipient.count >= bodies.count }
        try await e2e.waitUntilFinished(bodies.count, by: workers, timeout: .seconds(30))
        let ideal = Double(perSender - 1) / (80 * 0.95)
        var ratios: [Double] = []
        var busiest = 0
        for sender in senders {
            let times = e2e.server.requests.filter { $0.sender == sender && $0.succeeded }.map(\.arrived)
            let span = (times.max() ?? .now) - (times.min() ?? .now)
            ratios.append(Double(span.components.seconds) + Double(span.components.attoseconds) / 1e18)
            busiest = max(busiest, e2e.server.mostInAnyWindow(.seconds(1), sender: sender))
        }
        // One worker paces each sender at 95 % of its limit; several share its slots through Redis, each
        // request leaving at its own moment, up to `SendPacer.staleness` after its slot (the bound
        // threeWorkersShareOneSendersLimit holds them to).
        #expect(busiest <= (setup.workers == 1 ? 80 : 88), "every sender within its limit in every second")
        ratios = ratios.map { $0 / ideal }
        var unused = 0.0
        for worker in workers { unused += await metricTotal(worker, "outbound_send_slots_unused_total") }
        print("\(setup.senders) senders × \(perSender), \(setup.workers) worker(s), prefetch \(prefetch): span / ideal at 95 % of 80/s: \(ratios.map { String(format: "%.3f", $0) }.joined(separator: " ")); 130429: \(e2e.server.answered(130429)); slots granted and not used: \(Int(unused)); busiest second: \(busiest)")
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 }, "each sent once")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        for worker in workers { try await worker.stop() }
        await e2e.cleanUp()
    }
}
