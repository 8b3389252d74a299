import AMQPClient
import Foundation
import PipelineKit
import RedisClient
import Testing
import TestSupport

/// `replay` and `status`, run as the built executable against real RabbitMQ and Redis.
@Suite(.serialized) struct OperatorToolsTests {
    /// 30 letters of a permanent error and 20 of retries exhausted on a transient one: `replay
    /// --code 131000` moves exactly the 20 (a dry run first moves nothing), and each is sent once.
    @Test func replayMovesExactlyTheLettersOfOneCode() async throws {
        let e2e = try await EndToEndHarness()
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "retry: { max_attempts: 5, backoff: [300ms, 1s] }", with: "retry: { max_attempts: 2, backoff: [200ms] }"))
        let permanent = 0..<30
        let transient = 30..<50
        e2e.server.answer { _, json in
            let number = Int((json?["to"]?.stringValue ?? "").suffix(9)) ?? 0
            return permanent.contains(number) ? .error(status: 400, code: 131026, message: "(#131026) Message undeliverable") : .error(status: 503, code: 131000, message: "(#131000) Something went wrong")
        }
        let worker = try await e2e.startWorker()
        try await e2e.publish((0..<50).map(e2e.textMessage))
        let dead = "\(e2e.queue).dead"
        try await poll("50 dead letters") { try await e2e.inspector.depth(dead) == 50 }

        let dry = try TestServices.run(TestServices.executable, ["replay", "--dry-run", "--code", "131000"], environment: e2e.environment)
        #expect(dry.status == 0, "\(dry.output)")
        let listed = dry.output.split(separator: "\n").filter { $0.hasPrefix("would move ") && $0.contains("code=131000") }
        #expect(listed.count == 20, "the dry run lists the 20: \(dry.output)")
        // The dry run read every letter unacknowledged: the broker puts them back a moment after its connection closed.
        let afterDryRun = try await e2e.inspector.depth(dead, settlingAt: 50)
        #expect(afterDryRun == 50, "a dry run moves nothing: \(afterDryRun) in .dead")
        #expect(try await e2e.inspector.depth(e2e.queue) == 0)

        let sentBefore = e2e.server.requests.count
        e2e.server.answer { _, _ in .success }
        let replay = try TestServices.run(TestServices.executable, ["replay", "--code", "131000"], environment: e2e.environment)
        #expect(replay.status == 0, "\(replay.output)")
        #expect(replay.output.contains("moved 20 of 50 dead letter(s)"), "\(replay.output)")
        try await poll("the 20 sent after the replay") { e2e.server.requests.count - sentBefore >= 20 }
        try await e2e.waitUntilDrained()
        // The 50 dead-lettered, then the 20 replayed: every one decided, nothing more to send.
        try await e2e.waitUntilFinished(70, by: [worker])
        let after = e2e.server.requests.dropFirst(sentBefore)
        let recipients = Dictionary(grouping: after, by: \.recipient).mapValues(\.count)
        #expect(Set(recipients.keys) == Set(transient.map(e2e.recipient)), "exactly the transient ones are sent again")
        #expect(recipients.values.allSatisfy { $0 == 1 }, "each once: \(recipients.filter { $0.value > 1 })")
        // The replay held the 30 it did not move unacknowledged until it ended.
        let stayed = try await e2e.inspector.depth(dead, settlingAt: 30)
        #expect(stayed == 30, "the 30 permanent letters stay: \(stayed) in .dead")
        let left = try await e2e.inspector.drain(dead, expecting: 30)
        #expect(left.allSatisfy { $0.properties.headers["x-error-code"]?.intValue == 131026 })
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// Ctrl-C, then `kill -9`, half-way through a replay: each letter ends in exactly one queue,
    /// and the next run moves the rest — none left behind, none twice in the queue, each sent once.
    @Test func anInterruptedOrKilledReplayMovesEachLetterOnce() async throws {
        let e2e = try await EndToEndHarness()
        let dead = "\(e2e.queue).dead"
        // The source queue as the worker declares it; 20 letters to move among 6,000 others, spread out.
        try await e2e.inspector.publish([], to: e2e.queue)
        let filler: (Int) -> [UInt8] = { Array(#"{"internalId":"filler-\#($0)","to":"+15550000000","type":"text","text":{"body":"x"}}"#.utf8) }
        for round in 0..<20 {
            try await e2e.inspector.publish([e2e.textMessage(round)], to: dead,
                                            headers: ["x-error-step": .string("dispatch"), "x-error": .string("HTTP 503, code 131000"), "x-error-code": .int(131000), "x-attempts": .int(5)])
            try await e2e.inspector.publish((0..<300).map { filler(round * 300 + $0) }, to: dead,
                                            headers: ["x-error-step": .string("dispatch"), "x-error": .string("HTTP 400, code 131026"), "x-error-code": .int(131026)])
        }
        #expect(try await e2e.inspector.depth(dead) == 6020)

        func interruptedReplay(with signal: Int32) async throws -> Int {
            let replay = try WorkerProcess(["replay", "--code", "131000"], environment: e2e.environment, healthPort: 0)
            try await poll("the first letter moved", timeout: .seconds(20)) { replay.log.contains("moved ") }
            replay.signal(signal)
            let status = try await replay.waitForExit(timeout: .seconds(20))
            if signal == SIGINT {
                #expect(status == 130, "an interrupted replay says so: \(replay.log.suffix(500))")
                #expect(replay.log.contains("run the same command again to move the rest"))
            }
            return replay.log.split(separator: "\n").filter { $0.hasPrefix("moved ") && $0.contains("code=131000") }.count
        }
        // Each letter a replay looked at and did not move is held unacknowledged until its connection
        // closes; the broker puts them back a moment after it notices the close, not when the process
        // is gone (after a kill, only once it sees the socket drop). So the counts below are read once
        // every letter is back in one queue or the other, within a bound: a letter lost or in both
        // never gets there, and the counts then read say so.
        func settledCounts() async throws -> (moved: Int, dead: Int) {
            var counts = (moved: -1, dead: -1)
            try? await poll("each of the 6,020 letters in one queue", timeout: .seconds(20)) {
                let inQueue = try await e2e.inspector.depth(e2e.queue)
                let inDead = try await e2e.inspector.depth(dead)
                counts = (moved: inQueue, dead: inDead)
                return inQueue + inDead == 6020
            }
            return counts
        }
        let firstMoved = try await interruptedReplay(with: SIGINT)
        #expect(firstMoved > 0 && firstMoved < 20, "interrupted half-way: \(firstMoved)")
        let afterInterrupt = try await settledCounts()
        #expect(afterInterrupt.moved == firstMoved, "what it said it moved is in the queue: \(afterInterrupt.moved), said \(firstMoved)")
        #expect(afterInterrupt.dead == 6020 - firstMoved, "and nowhere else: \(afterInterrupt.dead) in .dead")
        _ = try await interruptedReplay(with: SIGKILL)
        let afterKill = try await settledCounts()
        let movedSoFar = afterKill.moved
        #expect(movedSoFar < 20, "killed half-way (if this fails, the replay finished before the kill): \(movedSoFar)")
        #expect(afterKill.dead + movedSoFar == 6020, "a kill at any point leaves each letter in one queue: \(afterKill.dead) in .dead, \(movedSoFar) moved")

        let rest = try TestServices.run(TestServices.executable, ["replay", "--code", "131000"], environment: e2e.environment)
        #expect(rest.status == 0, "\(rest.output)")
        #expect(rest.output.contains("moved \(20 - movedSoFar) of \(6020 - movedSoFar) dead letter(s)"), "\(rest.output.suffix(300))")
        let left = try await e2e.inspector.depth(dead, settlingAt: 6000)
        #expect(left == 6000, "the 6,000 others stay in .dead: \(left)")
        let moved = try await e2e.inspector.drain(e2e.queue, expecting: 20)
        let ids = moved.compactMap { (try? JSONValue(parsing: $0.body))?["internalId"]?.stringValue }
        #expect(Set(ids) == Set((0..<20).map(e2e.id)) && ids.count == 20, "each of the 20 once in the queue: \(ids.sorted())")
        #expect(moved.allSatisfy { $0.properties.headers["x-attempts"] == nil && $0.properties.headers["x-replayed-from-error"]?.stringValue == "HTTP 503, code 131000" })

        // Sent once each.
        try await e2e.inspector.publish(moved.map(\.body), to: e2e.queue)
        let worker = try await e2e.startWorker()
        try await poll("the 20 sent") { (0..<20).allSatisfy { e2e.server.sentByRecipient[e2e.recipient($0)] != nil } }
        try await e2e.waitUntilFinished(20, by: [worker])
        #expect(e2e.server.requests.count == 20)
        try await worker.stop()
        await e2e.inspector.delete([dead])
        await e2e.cleanUp()
    }

    /// The source queue declared, and a dead letter (a transient code) of each of `numbers`' text messages in `.dead`; returns `.dead`.
    private func deadLetters(_ numbers: Range<Int>, of e2e: EndToEndHarness) async throws -> String {
        let dead = "\(e2e.queue).dead"
        try await e2e.inspector.publish([], to: e2e.queue)
        try await e2e.inspector.publish(numbers.map(e2e.textMessage), to: dead, headers: ["x-error-step": .string("dispatch"), "x-error-code": .int(131000)])
        return dead
    }

    /// RabbitMQ applies a transaction's acks even when a queue refuses one of its publishes: a replay
    /// into a source queue at a length limit that rejects publishes removed each letter it tried and
    /// its copy went nowhere. The letter is put back, and the replay stops saying why.
    @Test func aReplayTheSourceQueueRefusesLeavesEveryLetterInDead() async throws {
        let e2e = try await EndToEndHarness()
        let dead = try await deadLetters(0..<3, of: e2e)
        let policy = try await TestServices.applyPolicy(TestServices.refuseEveryPublish, to: e2e.queue)
        defer { TestServices.clearPolicy(policy) }
        let replay = try TestServices.run(TestServices.executable, ["replay"], environment: e2e.environment)
        #expect(replay.status == 3, "\(replay.output)")
        #expect(replay.output.contains("refused the replayed copy") && replay.output.contains("back in `\(dead)`"), "\(replay.output)")
        let left = try await e2e.inspector.depth(dead, settlingAt: 3)
        #expect(left == 3, "every letter still in .dead: \(left)")
        #expect(try await e2e.inspector.depth(e2e.queue) == 0)
        await e2e.inspector.delete([dead])
        await e2e.cleanUp()
    }

    /// `replay` and `status` read `.dead` by holding each letter unacknowledged until they end: a
    /// second reader meanwhile did not see what the first held and said nothing — here `status`
    /// found no copy of a message whose letter a replay held. The second now waits (10 s) for the
    /// first, then says `.dead` is busy.
    @Test func aSecondReaderOfDeadSaysItIsBusyInsteadOfMissingLetters() async throws {
        let e2e = try await EndToEndHarness()
        let dead = try await deadLetters(1..<2, of: e2e)
        let environment = e2e.environment
        // Another reader, as a replay in progress: its lock taken, the letter held.
        let whileHeld = try await AMQPTransferSession.run(urls: [try AMQPURL(TestServices.rabbitURL)]) { session in
            try session.lock(dead + ".reader")
            _ = try session.get(dead)
            return try TestServices.run(TestServices.executable, ["status", "--format", "json", e2e.id(1)], environment: environment)
        }
        #expect(whileHeld.status == 3, "\(whileHeld.output)")
        #expect(whileHeld.output.contains("another replay or status is reading"), "\(whileHeld.output)")
        _ = try await e2e.inspector.depth(dead, settlingAt: 1)
        let after = try TestServices.run(TestServices.executable, ["status", "--format", "json", e2e.id(1)], environment: environment)
        let report = try JSONValue(parsing: Array(after.output.utf8)).arrayValue?.first
        #expect(report?["dead_letters"]?["count"]?.numberValue == 1, "found once the other reader is gone: \(after.output)")
        await e2e.inspector.delete([dead])
        await e2e.cleanUp()
    }

    /// `status` reads each state from real Redis: completed (with the wamid), processing (by whom,
    /// since when), in doubt (since when), unknown; and counts the copies waiting in `.dead`.
    @Test func statusTellsCompletedProcessingInDoubtAndUnknown() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        try await e2e.publish([e2e.textMessage(1)])
        let redis = e2e.redis()
        try await e2e.waitUntilCompleted(e2e.id(1), using: redis)
        try await worker.stop()
        let since = UTCTimestamp.format(Date().addingTimeInterval(-42))
        _ = try await redis.send(["SET", "idempotency:outbound:\(e2e.id(2))", #"{"status":"processing","owner":"worker-elsewhere","since":"\#(since)"}"#, "EX", "600"])
        try await e2e.inspector.publish([e2e.textMessage(2)], to: "\(e2e.queue).dead",
                                        headers: ["x-error-step": .string("dispatch"), "x-error": .string("gave up"), "x-error-code": .int(131000)])

        _ = try await redis.send(["SET", "idempotency:outbound:\(e2e.id(4))", #"{"status":"in_doubt","owner":"worker-elsewhere","since":"\#(since)","attempt":2}"#, "EX", "600"])

        // Dead-lettered in doubt (`on_in_doubt: dead_letter`): its key stays in_doubt, and it was called waiting (audit).
        _ = try await redis.send(["SET", "idempotency:outbound:\(e2e.id(5))", #"{"status":"in_doubt","owner":"worker-elsewhere","since":"\#(since)","attempt":1}"#, "EX", "600"])
        try await e2e.inspector.publish([e2e.textMessage(5)], to: "\(e2e.queue).dead",
                                        headers: ["x-error-step": .string("dispatch"), "x-error": .string("in doubt: no status within the window"), "x-error-code": .string("in_doubt")])

        let text = try TestServices.run(TestServices.executable, ["status", e2e.id(1), e2e.id(2), e2e.id(3), e2e.id(4), e2e.id(5)], environment: e2e.environment)
        #expect(text.status == 0, "\(text.output)")
        #expect(text.output.contains("idempotency:outbound:\(e2e.id(1)): completed at "), "\(text.output)")
        #expect(text.output.contains(", wamid wamid.standin."), "\(text.output)")
        #expect(text.output.contains("idempotency:outbound:\(e2e.id(2)): processing by worker-elsewhere since \(since)"), "\(text.output)")
        #expect(text.output.contains("idempotency:outbound:\(e2e.id(3)): absent"), "\(text.output)")
        // SPEC 13: "`status ID` shows `in_doubt` and since when".
        #expect(text.output.contains("idempotency:outbound:\(e2e.id(4)): in_doubt since \(since)"), "\(text.output)")
        #expect(text.output.contains("waiting for a delivery status or the window"), "\(text.output)")
        #expect(text.output.contains("idempotency:outbound:\(e2e.id(5)): in_doubt since \(since)") && text.output.contains("dead-lettered in doubt"), "\(text.output)")

        let json = try TestServices.run(TestServices.executable, ["status", "--format", "json", e2e.id(1), e2e.id(2), e2e.id(3)], environment: e2e.environment)
        #expect(json.status == 0, "\(json.output)")
        // Standard error (diagnostics, if any) shares the output here: the JSON starts at its first line.
        let document = json.output.range(of: "[\n").map { String(json.output[$0.lowerBound...]) } ?? json.output
        let reports = try JSONValue(parsing: Array(document.utf8)).arrayValue ?? []
        #expect(reports.count == 3)
        #expect(reports.first?["state"]?.stringValue == "completed")
        #expect(reports.first?["wamid"]?.stringValue?.hasPrefix("wamid.") == true)
        #expect((reports.first?["ttl_seconds"]?.numberValue ?? 0) > 86_000, "the key's TTL")
        #expect(reports.dropFirst().first?["state"]?.stringValue == "processing")
        #expect(reports.dropFirst().first?["owner"]?.stringValue == "worker-elsewhere")
        #expect((reports.dropFirst().first?["age_seconds"]?.numberValue ?? 0) >= 42)
        #expect(reports.dropFirst().first?["dead_letters"]?["count"]?.numberValue == 1, "its copy in .dead")
        #expect(reports.last?["state"]?.stringValue == "absent")
        #expect(reports.last?["dead_letters"]?["count"]?.numberValue == 0)
        // status reads each letter unacknowledged; the broker puts it back a moment after status ends.
        let stillDead = try await e2e.inspector.depth("\(e2e.queue).dead", settlingAt: 2)
        #expect(stillDead == 2, "status reads .dead without consuming it: \(stillDead) there")
        await e2e.cleanUp()
    }
}
