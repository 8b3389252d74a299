import AMQPClient
import Foundation
import PipelineKit
import RedisClient
import Testing
import TestSupport

/// Crashes, restarts, outages, reloads and expired tokens, end to end.
@Suite(.serialized) struct ResilienceTests {
    @Test func redisOutageUnderFailOpenLosesNothingAndDedupReturns() async throws {
        let e2e = try await EndToEndHarness()
        let redis = try ScratchRedis()
        try await redis.start()
        e2e.redisPort = redis.port
        let worker = try await e2e.startWorker()
        try await e2e.publish((0..<100).map(e2e.textMessage))
        try await poll("first 100 sent") { e2e.server.requests.count >= 100 }
        try await redis.stop()
        try await e2e.publish((100..<200).map(e2e.textMessage))
        try await poll("messages keep flowing with Redis down") { e2e.server.requests.count >= 200 }
        try await poll("/health says redis down, degraded") {
            guard let health = await worker.get("/health") else { return false }
            return health.body?["status"]?.stringValue == "degraded" && health.body?["checks"]?["redis"]?["status"]?.stringValue == "down"
        }
        #expect(await worker.get("/health")?.status == 200)
        let metrics = await worker.text("/metrics") ?? ""
        #expect(metrics.contains(#"outbound_degraded_total{step="idempotency"}"#))
        try await redis.start()
        try await poll("/health back to ok") { await worker.get("/health")?.body?["status"]?.stringValue == "ok" }
        var published = 200
        try await poll("dedup works again") {
            try await e2e.publish([e2e.textMessage(300)])
            published += 1
            try await Task.sleep(for: .milliseconds(200))
            return (try? redis.cli(["get", "idempotency:outbound:\(e2e.id(300))"]))?.contains("completed") == true
        }
        // Every copy published so far handled (the last ones of the loop above may still be in the worker).
        try await e2e.waitUntilFinished(published, by: [worker])
        let before = e2e.server.requests.count
        try await e2e.publish([e2e.textMessage(300), e2e.textMessage(300)])
        try await e2e.waitUntilFinished(published + 2, by: [worker])
        #expect(e2e.server.requests.count == before, "after Redis returned, duplicates are skipped again")
        #expect(Set((0..<200).map { "+5511\(String(format: "%09d", $0))" }).isSubset(of: Set(e2e.requestsByRecipient.keys)), "nothing lost")
        try await worker.stop()
        try await redis.stop()
        await e2e.cleanUp()
    }

    @Test func killNineThenRestartSendsEveryIdWithFewDuplicates() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.answer { _, _ in .stall(.milliseconds(5)) }
        let first = try await e2e.startWorker()
        try await e2e.publish((0..<1000).map(e2e.textMessage))
        try await poll("a few hundred sent") { e2e.server.requests.count >= 300 }
        first.signal(SIGKILL)
        #expect(try await first.waitForExit(timeout: .seconds(10)) == 128 + SIGKILL)
        let second = try await e2e.startWorker()
        try await poll("every id sent at least once", timeout: .seconds(90)) { e2e.requestsByRecipient.count >= 1000 }
        // Every message acknowledged, those the killed worker held included (back a moment after the
        // kill, and those whose key it had claimed only after its lease): only then is the count final.
        try await e2e.waitUntilSettled(timeout: .seconds(60))
        let duplicates = e2e.server.requests.count - 1000
        print("kill -9 after \(e2e.server.requests.count - duplicates) ids: \(duplicates) duplicate request(s) (concurrency 16)")
        #expect(duplicates >= 0 && duplicates <= 16, "duplicates \(duplicates) exceed the in-flight count")
        try await second.stop()
        await e2e.cleanUp()
    }

    @Test func sigtermDrainsExitsZeroAndARestartSendsEachIdOnce() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.answer { _, _ in .stall(.milliseconds(20)) }
        let first = try await e2e.startWorker()
        try await e2e.publish((0..<600).map(e2e.textMessage))
        try await poll("some sent") { e2e.server.requests.count >= 100 }
        let stopped = ContinuousClock.now
        first.signal(SIGTERM)
        #expect(try await first.waitForExit(timeout: .seconds(15)) == 0)
        #expect(ContinuousClock.now - stopped < .seconds(11), "within the drain timeout")
        #expect(first.log.contains("draining"))
        let late = e2e.server.requests.filter { $0.arrived - stopped > .milliseconds(100) }.count
        #expect(late == 0, "after SIGTERM nothing new starts: \(late) requests came later")
        let second = try await e2e.startWorker()
        try await poll("all 600 sent", timeout: .seconds(60)) { e2e.requestsByRecipient.count >= 600 }
        // Every message acknowledged: nothing more can be sent.
        try await e2e.waitUntilSettled()
        #expect(e2e.server.requests.count == 600, "each id exactly once")
        try await second.stop()
        await e2e.cleanUp()
    }

    @Test func sighupReloadsTheTTLAndKeepsTheOldPipelineWhenBroken() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        let redis = e2e.redis()
        try await e2e.publish([e2e.textMessage(1)])
        try await poll("first sent") { e2e.server.requests.count >= 1 }
        try await e2e.waitUntilCompleted(e2e.id(1), using: redis)
        #expect(try await redis.send(["TTL", "idempotency:outbound:\(e2e.id(1))"]).integer ?? 0 > 86_000)

        try EndToEndHarness.variant.replacingOccurrences(of: "with: { lease: 3s }", with: "with: { lease: 3s, ttl: 120 }")
            .write(to: e2e.folder.appendingPathComponent("outbound.e2e.yaml"), atomically: true, encoding: .utf8)
        let digestBefore = await worker.get("/health")?.body?["pipeline"]?["digest"]?.stringValue
        worker.signal(SIGHUP)
        do {
            try await poll("reloaded") { worker.log.contains("pipeline reloaded") }
        } catch {
            Issue.record("no reload: \(worker.log.suffix(2000))")
            throw error
        }
        #expect(await worker.get("/health")?.body?["pipeline"]?["digest"]?.stringValue != digestBefore)
        try await e2e.publish([e2e.textMessage(2)])
        try await e2e.waitUntilCompleted(e2e.id(2), using: redis)
        let ttl = try await redis.send(["TTL", "idempotency:outbound:\(e2e.id(2))"]).integer ?? 0
        #expect(ttl > 110 && ttl <= 120, "the reloaded ttl applies: \(ttl)")

        try "steps:\n  - name: idempotency\n    with: { tll: 5 }\n".write(to: e2e.folder.appendingPathComponent("outbound.e2e.yaml"), atomically: true, encoding: .utf8)
        worker.signal(SIGHUP)
        try await poll("rejected") { worker.log.contains("reload rejected") }
        #expect(worker.log.contains("outbound.e2e.yaml:3:13: error: unknown setting `tll`"))
        try await e2e.publish([e2e.textMessage(3)])
        try await e2e.waitUntilCompleted(e2e.id(3), using: redis)
        let third = try await redis.send(["TTL", "idempotency:outbound:\(e2e.id(3))"]).integer ?? 0
        #expect(third > 110 && third <= 120, "the last valid pipeline stays in use")
        #expect(try await worker.stop() == 0)
        await e2e.cleanUp()
    }

    /// Every hop through the broker is at least once (SPEC 11): 1,500 messages whose first attempt
    /// is answered 503 cycle through the retry queues while the broker is restarted twice and then
    /// killed with `kill -9`. Classic retry queues dead-lettered back at most once: messages moved
    /// to a retry queue shortly before the kill were lost (19 and 29 in 2 of 8 runs).
    @Test func messagesCyclingThroughRetryQueuesSurviveBrokerRestartsAndAKillNine() async throws {
        let e2e = try await EndToEndHarness()
        let failedOnce = InDoubtTests.Scenario.Seen()
        e2e.server.answerRequests { request in
            failedOnce.first(request.recipient) ? .error(status: 503, code: 131000, message: "Something went wrong") : .success
        }
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "1000"])
        let total = 1500
        try await e2e.publish((0..<total).map(e2e.textMessage))
        for (step, disruption) in [(300, "restart"), (700, "restart"), (1100, "kill")] {
            try await poll("\(step) requests before the broker's \(disruption)", timeout: .seconds(120)) { e2e.server.requests.count >= step }
            if disruption == "kill" {
                try TestServices.services("kill-node", "1")
                try TestServices.services("start", "rabbitmq")
            } else {
                try TestServices.services("restart", "rabbitmq")
            }
        }
        do {
            try await poll("all \(total) sent", timeout: .seconds(180)) { e2e.server.sentByRecipient.count >= total }
        } catch {
            let held = ((try? TestServices.messagesIncludingUnacknowledged()) ?? [:]).filter { $0.key.hasPrefix(e2e.queue) }
            Issue.record("\(e2e.server.sentByRecipient.count) of \(total) sent; ready and unacknowledged \(held); log \(worker.logPath)")
            throw error
        }
        try await e2e.waitUntilSettled(timeout: .seconds(120))
        let duplicates = e2e.server.sentByRecipient.values.reduce(0) { $0 + $1 - 1 }
        // Each disruption may return what the worker held (its in-flight count, concurrency + prefetch: 16 + 64).
        #expect(duplicates <= 3 * 80, "duplicate sends within the in-flight bound of three disruptions: \(duplicates)")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered")
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func rabbitMQRestartMidStreamResumesAndLosesNothing() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.answer { _, _ in .stall(.milliseconds(5)) }
        let worker = try await e2e.startWorker()
        try await e2e.publish((0..<800).map(e2e.textMessage))
        try await poll("some sent") { e2e.server.requests.count >= 150 }
        try TestServices.services("restart", "rabbitmq")
        do {
            try await poll("all 800 sent after the restart", timeout: .seconds(120)) { e2e.requestsByRecipient.count >= 800 }
        } catch {
            // Seldom seen (twice in many runs) and not yet explained: say where the rest are.
            let queued = (try? await e2e.inspector.depth(e2e.queue)) ?? -1
            let dead = (try? await e2e.inspector.depth("\(e2e.queue).dead")) ?? -1
            // Ready and unacknowledged in each of the scenario's queues (delay queues included): held by the worker, or gone.
            let held = ((try? TestServices.messagesIncludingUnacknowledged()) ?? [:]).filter { $0.key.hasPrefix(e2e.queue) }
            Issue.record("\(e2e.requestsByRecipient.count) of 800 sent; \(queued) ready in the queue, \(dead) dead; ready and unacknowledged \(held); /ready \(await worker.get("/ready")?.status ?? 0); worker log: \(worker.log.suffix(3000))")
            throw error
        }
        try await poll("/ready again") { await worker.get("/ready")?.status == 200 }
        #expect(worker.log.contains("reconnecting"))
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func anExpiredTokenPausesInsteadOfDeadLettering() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.answer { _, _ in .error(status: 401, code: 190, message: "Error validating access token: Session has expired") }
        let worker = try await e2e.startWorker()
        try await e2e.publish((0..<20).map(e2e.textMessage))
        try await poll("/health shows the reason") {
            let health = await worker.get("/health")
            return health?.body?["reason"]?.stringValue?.contains("code 190") == true
        }
        #expect(await worker.get("/health")?.body?["status"]?.stringValue == "degraded")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        e2e.server.answer { _, _ in .success }
        try await poll("sending resumes", timeout: .seconds(60)) {
            let served = e2e.requestsByRecipient.count
            let depth = try await e2e.inspector.depth(e2e.queue)
            let retrying = try await e2e.inspector.depth("\(e2e.queue).retry.1")
            return served >= 20 && depth == 0 && retrying == 0
        }
        try await poll("health ok again", timeout: .seconds(30)) { await worker.get("/health")?.body?["status"]?.stringValue == "ok" }
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "no message dead-lettered for a sender-side failure")
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// Six 190 answers, then a working token: the six came from requests in flight at once, one
    /// outage, so the sender pauses once (1 s in the test variant) and everything goes after one probe.
    /// Before, each failure doubled the pause: 1, 2, 4, 8, 16, 32 s.
    @Test func sixTokenFailuresInOneOutagePauseOnceAndEverythingGoesSoonAfter() async throws {
        let e2e = try await EndToEndHarness()
        // A first message opens the connection (until one is open, one send at a time opens it); then
        // six slow enough to be in flight together, as a burst meets a token that just expired.
        e2e.server.answer { number, _ in
            (2...7).contains(number) ? .after(.milliseconds(300), .error(status: 401, code: 190, message: "Error validating access token: Session has expired")) : .success
        }
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "1000"])
        try await e2e.publish([e2e.textMessage(40)])
        try await poll("the first sent") { e2e.server.sentByRecipient.count == 1 }
        let published = ContinuousClock.now
        try await e2e.publish((0..<40).map(e2e.textMessage))
        do {
            try await poll("all 41 sent", timeout: .seconds(60)) { e2e.server.sentByRecipient.count == 41 }
        } catch {
            throw TestFailure("\(error): \(e2e.server.sentByRecipient.count) sent of \(e2e.server.requests.count) requests; log \(worker.logPath)")
        }
        let took = ContinuousClock.now - published
        #expect(took < .seconds(15), "sent within a few seconds of the token working, not after a pause escalated per failure: \(took)")
        try await e2e.waitUntilFinished(41, by: [worker])
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 }, "each sent once")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// A token that stays rejected: a burst of failures escalates the pause once, then once per probe.
    @Test func aBurstOfTokenFailuresEscalatesThePauseOncePerProbeNotOncePerMessage() async throws {
        let e2e = try await EndToEndHarness()
        e2e.server.answer { _, _ in .error(status: 401, code: 190, message: "Error validating access token: Session has expired") }
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_THROUGHPUT": "1000"])
        try await e2e.publish((0..<100).map(e2e.textMessage))
        var pauses = 0
        try await poll("the pause reported on /health") {
            let paused = await worker.get("/health")?.body?["paused"]?.arrayValue?.first
            pauses = paused?["pauses_in_a_row"]?.numberValue.map { Int($0) } ?? 0
            return pauses > 0
        }
        // Probes come 1 s, then 2 s, then 4 s apart: within 2.5 s at most two more pauses.
        try await Task.sleep(for: .milliseconds(2500))
        let later = (await worker.get("/health")?.body?["paused"]?.arrayValue?.first?["pauses_in_a_row"]?.numberValue).map { Int($0) } ?? 0
        #expect(later <= 3, "the pause escalated once per probe, not once per failing message: \(later) pauses after \(e2e.server.requests.count) requests")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func aBusyHealthPortCannotStart() async throws {
        let e2e = try await EndToEndHarness()
        let first = try await e2e.startWorker()
        let second = try WorkerProcess(environment: e2e.environment, healthPort: first.healthPort)
        #expect(try await second.waitForExit(timeout: .seconds(20)) == 3)
        #expect(second.log.contains("HEALTH_PORT \(first.healthPort) is in use"))
        try await first.stop()
        await e2e.cleanUp()
    }
}
