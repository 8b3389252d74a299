import AMQPClient
import Foundation
import PipelineKit
import RedisClient
import Testing
import TestSupport

/// Sending at the rate WhatsApp allows (SPEC 8), end to end: the built worker, real RabbitMQ
/// and Redis, and a stand-in that enforces Meta's per-number limit (130429 beyond it).
@Suite(.serialized) struct FlowControlTests {
    @Test func aBurstForOneSenderIsPacedAtItsLimitAndNothingIsDeadLettered() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.enforceThroughput(perSecond: 80)
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"])
        try await e2e.publish((0..<1200).map(e2e.textMessage))
        try await poll("1,200 sent", timeout: .seconds(60)) { e2e.server.sentByRecipient.count >= 1200 }
        try await e2e.waitUntilFinished(1200, by: [worker])
        let sent = e2e.server.requests.filter(\.succeeded)
        let elapsed = (sent.map(\.arrived).max() ?? .now) - (e2e.server.requests.map(\.arrived).min() ?? .now)
        let throttled = e2e.server.answered(130429)
        let busiest = e2e.server.mostInAnyWindow()
        print("1,200 messages at 80/s: \(elapsed) from the first request to the last send, \(throttled) answers of 130429, busiest second \(busiest)")
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 }, "every message sent exactly once")
        #expect(sent.count == 1200)
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered")
        // Paced at the limit, not below it: its busiest second comes near 80 (76 at the 95 % it paces at).
        // How close the whole burst comes to the ideal 15 s is speed, which the machine's load decides
        // (other suites run alongside): printed above, left to benchmarks, not bounded here.
        #expect(busiest >= 60, "paced at its limit, not below it: at most \(busiest) requests in any one second")
        #expect(Double(throttled) < 0.05 * 1200, "130429 answers under 5 %: \(throttled)")
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func twoSendersArePacedSideBySideAndTheSecondIsNotHeldBehindTheFirst() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.enforceThroughput(perSecond: 80)
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"])
        // All of the first sender's messages are queued before any of the second's.
        try await e2e.publish((0..<600).map { e2e.message($0, sender: "111") } + (600..<1200).map { e2e.message($0, sender: "222") })
        try await poll("1,200 sent", timeout: .seconds(60)) { e2e.server.sentByRecipient.count >= 1200 }
        try await e2e.waitUntilFinished(1200, by: [worker])
        let sent = e2e.server.requests.filter(\.succeeded)
        func span(_ sender: String) -> (first: ContinuousClock.Instant, last: ContinuousClock.Instant) {
            let times = sent.filter { $0.sender == sender }.map(\.arrived)
            return (times.min() ?? .now, times.max() ?? .now)
        }
        let first = span("111"), second = span("222")
        let firstSentBeforeSecond = sent.filter { $0.sender == "111" && $0.arrived < second.first }.count
        let busiest = e2e.server.mostInAnyWindow()
        print("two senders: first \(first.last - first.first), second \(second.last - second.first), the second started \(second.first - first.first) after the first (\(firstSentBeforeSecond) of the first's sent by then); busiest second of both \(busiest); 130429: \(e2e.server.answered(130429))")
        // Behaviour, not speed: the spans printed above depend on the machine's load (600 in 7.9 s at
        // 95 % of 80/s is the ideal; README's known shortfall says how close it comes), not bounded here.
        #expect(firstSentBeforeSecond < 300, "the second sender starts while the first still has most of its backlog: \(firstSentBeforeSecond) of its 600 sent before")
        // One limit shared by both senders would allow at most 88 requests in any one second (the
        // bound threeWorkersShareOneSendersLimit holds a shared limit to); each at its own limit goes beyond.
        #expect(busiest > 88, "each at its own limit, not one shared: at most \(busiest) requests of both in any one second")
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 })
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func threeWorkersShareOneSendersLimit() async throws {
        let e2e = try await EndToEndHarness()
        let workers = [try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"]), try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"]),
                       try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"])]
        try await e2e.publish((0..<900).map(e2e.textMessage))
        try await poll("900 sent", timeout: .seconds(60)) { e2e.server.sentByRecipient.count >= 900 }
        try await e2e.waitUntilFinished(900, by: workers)
        let busiest = e2e.server.mostInAnyWindow(.seconds(1))
        print("three workers, one sender at 80/s: busiest one-second window \(busiest) requests")
        #expect(busiest <= 88, "never more than the limit + 10 % in any one-second window: \(busiest)")
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 })
        #expect(e2e.server.requests.count == 900)
        for worker in workers { try await worker.stop() }
        await e2e.cleanUp()
    }

    /// A connection that takes 150 ms to open (TLS to a far server) does not bunch the sends queued
    /// behind it: one send opens it alone, those that came meanwhile take new turns once it is open.
    /// Before, every send of those 150 ms went in the same millisecond when the connection opened,
    /// on top of the second that followed: over HTTP/2 they waited for its one connection, over
    /// HTTP/1.1 each opened its own.
    @Test(arguments: [true, false]) func sendsQueuedBehindAConnectionBeingOpenedDoNotGoTogether(http2: Bool) async throws {
        let tls = TestServices.tlsDirectory
        let e2e = try await EndToEndHarness(cloudAPI: .tls(certificate: "\(tls)/server.pem", key: "\(tls)/server.key", http2: http2))
        e2e.server.enforceThroughput(perSecond: 100)
        let standIn = try #require(e2e.baseURL.split(separator: ":").last.flatMap { Int($0) })
        let proxy = try HoldingProxy(to: standIn, connectDelay: .milliseconds(150))
        try await e2e.publish((0..<300).map(e2e.textMessage))
        let throughProxy = e2e.baseURL.replacingOccurrences(of: ":\(standIn)", with: ":\(proxy.port)")
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_API_URL": throughProxy, "WHATSAPP_CA_FILE": "\(tls)/ca.pem",
                                                       "WHATSAPP_THROUGHPUT": "100"])
        try await e2e.waitUntilFinished(300, by: [worker])
        let busiest = e2e.server.mostInAnyWindow()
        print("a connection opening in 150 ms (\(http2 ? "HTTP/2" : "HTTP/1.1")): busiest second \(busiest) at a limit of 100, 130429: \(e2e.server.answered(130429))")
        #expect(busiest <= 100, "never above the limit in any second: \(busiest)")
        #expect(e2e.server.sentByRecipient.count == 300 && e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 })
        try await worker.stop()
        proxy.close()
        await e2e.cleanUp()
    }

    /// A message back more than 25 ms after the send slot reserved for it takes a new turn, and the
    /// slot it did not use counts in `outbound_send_slots_unused_total` (the sender lost it: on a busy
    /// machine, the rate that goes missing). Before, only slots that expired in the pacer counted.
    @Test func aReservedSlotItsMessageCameTooLateForCountsAsUnused() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        var late = AMQPTable()
        late["x-carried-send-slot"] = .string(String(Int64((Date().timeIntervalSince1970 - 10) * 1000)))
        try await e2e.inspector.publish([e2e.textMessage(1)], to: e2e.queue, headers: late)
        try await e2e.inspector.publish([e2e.textMessage(2)], to: e2e.queue)
        try await poll("both sent") { e2e.server.sentByRecipient.count == 2 }
        let unused = await metricTotal(worker, "outbound_send_slots_unused_total")
        #expect(unused == 1, "the late message's slot, and no other: \(unused)")
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 })
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// Headers in the worker's own namespace set upstream (`x-carried-…`, `x-attempts`) that name no
    /// time, a time years ahead, or a count past 64 bits: each message is sent once at once, and the
    /// worker runs on. Before, `1e300` and `inf` trapped where the worker turned them into a wait or
    /// a header — the process ended, and again for each redelivery — and `x-attempts` at `Int64.max`
    /// overflowed counting the attempt.
    @Test func hostileCarriedHeadersNeitherEndTheWorkerNorHoldTheMessage() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        let yearsAhead = String(Int64((Date().timeIntervalSince1970 + 3 * 365 * 86_400) * 1000))
        let hostile: [(String, AMQPValue)] = [
            ("x-carried-send-slot", .string("1e300")), ("x-carried-marketing-retry-at", .string("inf")),
            ("x-carried-pacing-ticket", .string("7@1e300")), ("x-attempts", .int(.max)),
            ("x-carried-send-slot", .string(yearsAhead)), ("x-carried-pacing-ticket", .string("7@\(yearsAhead)")),
        ]
        for (index, (name, value)) in hostile.enumerated() {
            var headers = AMQPTable()
            headers[name] = value
            try await e2e.inspector.publish([e2e.textMessage(index)], to: e2e.queue, headers: headers)
        }
        try await e2e.inspector.publish([e2e.textMessage(hostile.count)], to: e2e.queue)
        try await poll("every message sent", timeout: .seconds(20)) { e2e.server.sentByRecipient.count == hostile.count + 1 }
        try await e2e.waitUntilFinished(hostile.count + 1, by: [worker])
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 })
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        #expect(try await worker.stop() == 0, "the worker ran on and stopped cleanly")
        await e2e.cleanUp()
    }

    @Test func aHeldPairWaitsWhileOtherRecipientsFlow() async throws {
        let e2e = try await EndToEndHarness()
        let held = "+5511999999999"
        let firstToPair = FirstTime()
        e2e.server.answer { _, json in
            // The pair's first request is refused; any later one is accepted.
            json?["to"]?.stringValue == held && firstToPair.take()
                ? .error(status: 400, code: 131056, message: "(#131056) Pair rate limit hit") : .success
        }
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "80"])
        try await e2e.publish([e2e.message(0, to: held)])
        try await poll("the pair refused") { e2e.server.answered(131056) == 1 }
        let refusedAt = try #require(e2e.server.requests.first?.arrived)
        try await e2e.publish((1..<5).map { e2e.message($0, to: held) } + (5..<55).map { e2e.message($0) })
        try await poll("the 50 others sent", timeout: .seconds(10)) { (5..<55).allSatisfy { e2e.server.sentByRecipient[e2e.recipient($0)] == 1 } }
        let othersDone = e2e.server.requests.filter { $0.recipient != held }.map(\.arrived).max() ?? .now
        try await poll("the held ones sent after the hold", timeout: .seconds(20)) { e2e.server.sentByRecipient[held] == 5 }
        try await e2e.waitUntilFinished(55, by: [worker])
        let toPair = e2e.server.requests.filter { $0.recipient == held }
        // The hold ends with the pair's next request: other recipients flow while it lasts, whatever
        // this machine's speed (how soon all 50 are done is printed, not bounded).
        let holdEnded = toPair.dropFirst().first?.arrived ?? .now
        let othersDuringHold = e2e.server.requests.filter { $0.recipient != held && $0.arrived < holdEnded }.count
        print("131056: the others done \(othersDone - refusedAt) after the refusal, \(othersDuringHold) of them during the hold; requests to the pair at \(toPair.map { $0.arrived - refusedAt })")
        #expect(othersDuringHold > 0, "other recipients flow while the pair is held")
        #expect(toPair.count == 6, "the refused request and each held message once")
        #expect(toPair.dropFirst().allSatisfy { $0.arrived - refusedAt >= .milliseconds(950) }, "no request to the pair during its 1 s hold")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// SPEC 8, 17: a pair one worker found held (`131056`) is held on every worker sharing its Redis
    /// (`holds:{sender}`) — on a worker that never read the sender's holds (its first message reads
    /// them), and on one that did (it reads what changed since, at most every 250 ms). Before, each
    /// worker held its own pairs: the other worker sent its share of the pair's messages at once,
    /// each refused again.
    @Test func aPairHeldOnOneWorkerIsHeldOnTheOther() async throws {
        let e2e = try await EndToEndHarness()
        let sender = String(Int.random(in: 100_000...999_999))
        let pairs = ["+5511977776666", "+5511977775555"]
        let firsts = [FirstTime(), FirstTime()]
        e2e.server.answer { _, json in
            guard let index = pairs.firstIndex(of: json?["to"]?.stringValue ?? ""), firsts[index].take() else { return .success }
            return .error(status: 400, code: 131056, message: "(#131056) Pair rate limit hit")
        }
        let workers = [try await e2e.startWorker(), try await e2e.startWorker()]
        let redis = e2e.redis()
        for (round, held) in pairs.enumerated() {
            let numbers = round * 10..<round * 10 + 9
            try await e2e.publish([e2e.message(numbers.lowerBound, sender: sender, to: held)])
            try await poll("the pair refused") { e2e.server.answered(131056) == round + 1 }
            try await poll("the hold written to Redis") { try await redis.send(["HEXISTS", "holds:\(sender)", "pair:\(sender):\(held)"]).integer == 1 }
            let refusedAt = try #require(e2e.server.requests.first { $0.recipient == held }?.arrived)
            // A worker that read the sender's holds before trusts that read for 250 ms (SPEC: in effect everywhere within it).
            if round > 0 { try await Task.sleep(until: refusedAt + .milliseconds(300)) }
            try await e2e.publish(numbers.dropFirst().map { e2e.message($0, sender: sender, to: held) })
            try await poll("each of the pair's messages sent after the hold", timeout: .seconds(20)) { e2e.server.sentByRecipient[held] == 9 }
            let toPair = e2e.server.requests.filter { $0.recipient == held }
            print("a pair held on one of two workers (round \(round + 1)): requests to it at \(toPair.map { $0.arrived - refusedAt })")
            #expect(toPair.count == 10, "the refused request and each message once")
            #expect(toPair.dropFirst().allSatisfy { $0.arrived - refusedAt >= .milliseconds(950) }, "no request to the pair from either worker during its 1 s hold")
            for worker in workers {
                #expect(await metricTotal(worker, "outbound_sends_total") > Double(round * 2), "both workers sent some of the pair's messages")
            }
        }
        try await e2e.waitUntilFinished(18, by: workers)
        for worker in workers { try await worker.stop() }
        await e2e.cleanUp()
    }

    @Test func expiredMessagesAreNotSentButDeadLetteredWithTheReason() async throws {
        let e2e = try await EndToEndHarness()
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "    max_park: 2s", with: "    max_park: 2s\n    max_age: 10m"))
        let worker = try await e2e.startWorker()
        try await e2e.publish([e2e.message(1, extra: #","expiresAt":"2020-01-01T00:00:00Z""#), e2e.message(2, extra: #","expiresAt":"2099-01-01T00:00:00Z""#)])
        var old = AMQPProperties.persistentJSON
        old.timestamp = UInt64(Date().addingTimeInterval(-3600).timeIntervalSince1970)
        try await e2e.inspector.publish([e2e.message(3)], to: e2e.queue, properties: old)
        let dead = try await e2e.inspector.drain("\(e2e.queue).dead", expecting: 2)
        try await poll("the one still valid sent") { e2e.server.sentByRecipient[e2e.recipient(2)] == 1 }
        #expect(dead.count == 2)
        for letter in dead {
            #expect(letter.properties.headers["x-error-step"] == .string("dispatch"))
            #expect(letter.properties.headers["x-error"]?.stringValue?.hasPrefix("expired") == true)
        }
        #expect(e2e.server.requests.count == 1, "expired messages are never sent")
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func sigtermWhileMessagesWaitReturnsThemAndARestartSendsEachOnce() async throws {
        let e2e = try await EndToEndHarness()
        let first = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "5"])
        try await e2e.publish((0..<30).map(e2e.textMessage))
        try await poll("a few sent") { e2e.server.requests.count >= 3 }
        let stopped = ContinuousClock.now
        first.signal(SIGTERM)
        #expect(try await first.waitForExit(timeout: .seconds(15)) == 0)
        #expect(ContinuousClock.now - stopped < .seconds(10), "within the drain timeout")
        let sentBefore = e2e.server.requests.count
        // What the worker held (parked, prefetched) the broker puts back a moment after the connection
        // closed, and a message on its way from a delay queue back to the source is in neither for a
        // moment: the three depths are read until they add up, within a bound (one lost or twice stays off).
        var waiting = -1
        try? await poll("the waiting messages back in the queues", timeout: .seconds(10)) {
            waiting = try await e2e.inspector.depth(e2e.queue) + (try await e2e.inspector.depth("\(e2e.queue).retry.1")) + (try await e2e.inspector.depth("\(e2e.queue).retry.2"))
            return sentBefore + waiting == 30
        }
        #expect(sentBefore + waiting == 30, "the waiting messages are back in the queues: \(sentBefore) sent, \(waiting) waiting")
        let second = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "50"])
        try await poll("all 30 sent", timeout: .seconds(30)) { e2e.requestsByRecipient.count >= 30 }
        try await e2e.waitUntilDrained()
        try await e2e.waitUntilFinished(waiting, by: [second])
        #expect(e2e.server.requests.count == 30, "nothing sent twice")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        try await second.stop()
        await e2e.cleanUp()
    }
}

