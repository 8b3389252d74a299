import AMQPClient
import Foundation
import PipelineKit
import RedisClient
import Testing
import TestSupport

/// The windows where a message could be lost, sent twice or stuck, closed: each test here
/// failed on the worker before its fix.
@Suite(.serialized) struct ReliabilityTests {
    /// On SIGTERM past the drain timeout a send in progress used to be cancelled and its key
    /// released, although the request had reached the Cloud API: a restart sent it again.
    @Test func aSendInProgressFinishesWhenTheDrainTimesOut() async throws {
        let e2e = try await EndToEndHarness()
        try e2e.writeVariant(EndToEndHarness.variant
            .replacingOccurrences(of: "drain_timeout: 10s", with: "drain_timeout: 1s")
            .replacingOccurrences(of: "with: { timeout: 2s }", with: "with: { timeout: 6s }")
            .replacingOccurrences(of: "with: { lease: 3s }", with: "with: { lease: 8s }"))
        e2e.server.answer { _, _ in .stall(.seconds(3)) }
        let first = try await e2e.startWorker()
        try await e2e.publish([e2e.textMessage(1)])
        try await poll("the request in progress") { e2e.server.requests.count == 1 }
        first.signal(SIGTERM)
        #expect(try await first.waitForExit(timeout: .seconds(15)) == 0)
        let redis = e2e.redis()
        let key = try await redis.send(["GET", "idempotency:outbound:\(e2e.id(1))"]).string
        #expect(key?.contains(#""status":"completed""#) == true, "the send that happened is recorded: \(key ?? "no key")")
        e2e.server.answer { _, _ in .success }
        let second = try await e2e.startWorker()
        // Acknowledged by the first worker, or put back and handled by the second: either way nothing
        // is held any more. (An empty queue read at once says neither: the broker puts back what the
        // first held a moment after its connection closed, and the second may hold it unfinished.)
        try await e2e.waitUntilSettled()
        #expect(e2e.server.requests.count == 1, "not sent again after the restart")
        try await second.stop()
        await e2e.cleanUp()
    }

    /// A fail_closed completion retrying while Redis is down held its slot for ever, and with
    /// every slot held the loop never reached the drain: SIGTERM then waited for SIGKILL.
    @Test func aCompletionLoopDuringARedisOutageDoesNotHoldUpShutdown() async throws {
        let e2e = try await EndToEndHarness()
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "drain_timeout: 10s", with: "drain_timeout: 2s")
            + "\n  - name: mark_completed\n    degradation: fail_closed\n")
        let redis = try ScratchRedis()
        try await redis.start()
        e2e.redisPort = redis.port
        let worker = try await e2e.startWorker()
        try await redis.stop()
        try await e2e.publish((0..<40).map(e2e.textMessage))
        try await poll("every slot busy recording a completion") { e2e.server.requests.count >= 16 }
        let stopped = ContinuousClock.now
        worker.signal(SIGTERM)
        #expect(try await worker.waitForExit(timeout: .seconds(20)) == 0)
        let took = ContinuousClock.now - stopped
        #expect(took < .seconds(6), "shutdown bounded by the drain timeout (2 s) and a send's timeout: \(took)")
        #expect(worker.log.contains("step failed after the message was sent; acknowledged so it is not sent twice"))
        await e2e.cleanUp()
    }

    /// A phone number id the token may not use (code 200) paused the whole worker again and again.
    @Test func aSenderWithoutPermissionPausesOnlyItself() async throws {
        let e2e = try await EndToEndHarness()
        let forbidden = "7777"
        e2e.server.answerRequests { request in
            request.sender == forbidden ? .error(status: 403, code: 200, message: "(#200) Permission denied for this phone number") : .success
        }
        let worker = try await e2e.startWorker()
        let bodies = (0..<40).map { $0 % 2 == 0 ? e2e.message($0, sender: forbidden) : e2e.message($0) }
        try await e2e.publish(bodies)
        try await poll("the other sender's 20 sent", timeout: .seconds(10)) {
            (0..<40).filter { $0 % 2 == 1 }.allSatisfy { e2e.server.sentByRecipient[e2e.recipient($0)] == 1 }
        }
        try await poll("/health lists the paused sender") {
            let paused = await worker.get("/health")?.body?["paused"]?.arrayValue ?? []
            return paused.contains {
                $0["scope"]?.stringValue == "sender:\(forbidden)" && $0["senders"]?.arrayValue == [.string(forbidden)] && $0["reason"]?.stringValue?.contains("code 200") == true
            }
        }
        #expect(await worker.get("/ready")?.status == 200, "consumption goes on for everyone else")
        let refused = e2e.server.requests.filter { $0.sender == forbidden }.count
        #expect(refused < 10, "the paused sender is not tried for each of its 20 messages: \(refused) requests")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered for a sender-side failure")
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// A variant that placed mark_completed before dispatch passed `check` and then lost every message.
    @Test func aPipelineThatMarksBeforeItSendsDoesNotStart() async throws {
        let e2e = try await EndToEndHarness()
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "steps:\n", with: """
            steps:
              - name: mark_completed
                remove: true
              - name: mark_early
                uses: mark_completed
                after: idempotency

            """))
        let worker = try WorkerProcess(environment: e2e.environment, healthPort: freePort())
        #expect(try await worker.waitForExit(timeout: .seconds(20)) == 1)
        #expect(worker.log.contains("error: step `mark_early` (mark_completed) needs `receipt`, which no earlier step provides"), "\(worker.log.suffix(2000))")
        await e2e.cleanUp()
    }

    /// A comment at the top of the file made SIGHUP rebuild the Redis pool and the HTTP client;
    /// `.env` was not read again, so a rotated token needed a restart.
    @Test func sighupComparesValuesAndRereadsDotEnv() async throws {
        let e2e = try await EndToEndHarness()
        try "IDEMPOTENCY_TTL_SECONDS=86400\n".write(to: e2e.folder.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        let worker = try await e2e.startWorker(directory: e2e.folder)
        let base = e2e.folder.appendingPathComponent("outbound.yaml")
        try ("# a comment added on top\n" + (try String(contentsOf: base, encoding: .utf8))).write(to: base, atomically: true, encoding: .utf8)
        worker.signal(SIGHUP)
        try await poll("the reload seen") { worker.log.contains("pipeline unchanged") || worker.log.contains("pipeline reloaded") }
        #expect(worker.log.contains("pipeline unchanged"), "moving lines changes nothing")
        #expect(!worker.log.contains("shutting down replaced resource"))

        try "IDEMPOTENCY_TTL_SECONDS=300\n".write(to: e2e.folder.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        worker.signal(SIGHUP)
        try await poll("reloaded from .env") { worker.log.contains("pipeline reloaded") }
        #expect(worker.log.contains(#""changed":"step idempotency"#), "only the step whose value changed: \(worker.log.suffix(1500))")
        try await e2e.publish([e2e.textMessage(1)])
        let redis = e2e.redis()
        try await e2e.waitUntilCompleted(e2e.id(1), using: redis)
        let ttl = try await redis.send(["TTL", "idempotency:outbound:\(e2e.id(1))"]).integer ?? 0
        #expect(ttl > 290 && ttl <= 300, "the TTL from the re-read .env applies: \(ttl)")
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// `publish` against the prod variant declared a classic queue: on a quorum queue it failed,
    /// and on a fresh broker it made the wrong queue, which the worker could then not declare.
    @Test func publishDeclaresTheQueuesTheWorkerDeclares() async throws {
        let e2e = try await EndToEndHarness()
        try e2e.writeVariant("source:\n  with:\n    queue_type: quorum\n")
        let file = e2e.folder.appendingPathComponent("one.json")
        try String(decoding: e2e.textMessage(1), as: UTF8.self).write(to: file, atomically: true, encoding: .utf8)
        var environment = e2e.environment
        environment["WHATSAPP_ACCESS_TOKEN"] = nil
        let published = try TestServices.run(TestServices.executable, ["publish", file.path], environment: environment.merging(["WHATSAPP_ACCESS_TOKEN": ""]) { $1 })
        #expect(published.status == 0, "publish needs no Cloud API token: \(published.output)")
        await #expect(throws: AMQPError.self, "the queue is a quorum queue: declaring it classic conflicts") {
            try await e2e.inspector.publisher.declare(AMQPQueueDeclaration(name: e2e.queue))
        }
        let worker = try await e2e.startWorker()
        try await poll("the message sent by a worker on the same variant") { e2e.server.requests.count == 1 }
        try await worker.stop()
        await e2e.cleanUp()
    }

    @Test func unknownProcessSettingsAreErrorsAndTextLogsGoToStandardOutput() async throws {
        let e2e = try await EndToEndHarness()
        for (name, value) in [("HEALTH_PORT", "eighty"), ("LOG_LEVEL", "loud"), ("LOG_FORMAT", "xml")] {
            let result = try TestServices.run(TestServices.executable, ["run"], environment: e2e.environment.merging([name: value]) { $1 })
            #expect(result.status == 1, "\(name)=\(value)")
            #expect(result.output.contains("error: \(name)=\(value)"), "the error names the variable: \(result.output.suffix(500))")
        }
        let errors = e2e.folder.appendingPathComponent("stderr.log").path
        let text = try WorkerProcess(environment: e2e.environment.merging(["LOG_FORMAT": "text"]) { $1 }, healthPort: freePort(), errorPath: errors)
        try await text.waitUntilReady()
        try await text.stop()
        #expect(text.log.contains("consuming"), "text log lines on standard output")
        #expect(((try? String(contentsOfFile: errors, encoding: .utf8)) ?? "").isEmpty, "nothing on standard error")
        await e2e.cleanUp()
    }

    @Test func largeMetadataAndExactNumbersGetThrough() async throws {
        let e2e = try await EndToEndHarness()
        let worker = try await e2e.startWorker()
        let padding = String(repeating: "x", count: 200_000)
        let big = #","metadata":{"order":"A-1","note":"\#(padding)"}"#
        let exact = Array(#"{"internalId":"\#(e2e.id(2))","to":"\#(e2e.recipient(2))","type":"interactive","interactive":{"type":"button","body":{"text":"Pick"},"action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}}]},"ref":9007199254740993,"account":12345678901234567890}}"#.utf8)
        try await e2e.publish([e2e.message(1, extra: big), exact])
        try await poll("both sent") { e2e.server.requests.count == 2 }
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "a valid message with large metadata is not dead-lettered")
        let sent = try #require(e2e.server.requests.first { $0.recipient == e2e.recipient(2) })
        let body = String(decoding: sent.body, as: UTF8.self)
        #expect(body.contains(#""ref":9007199254740993"#) && body.contains(#""account":12345678901234567890"#), "\(body)")
        let first = String(decoding: e2e.server.requests.first { $0.recipient == e2e.recipient(1) }?.body ?? [], as: UTF8.self)
        #expect(!first.contains("A-1"), "metadata is never sent")
        try await worker.stop()
        await e2e.cleanUp()
    }

    /// SIGHUP's default action ends a process: one that came while the worker was still starting
    /// (connecting to Redis, say) killed it before its reload handler was installed. Ignored
    /// instead, it was lost: the file edited meanwhile was not read until the next SIGHUP.
    @Test func aSighupWhileStartingDoesNotEndTheWorkerAndReloadsOnceItRuns() async throws {
        let e2e = try await EndToEndHarness()
        let silent = try SilentListener()
        e2e.redisPort = silent.port
        let variant = EndToEndHarness.variant.replacingOccurrences(of: "resources:\n", with: "resources:\n  redis:\n    with: { command_timeout: 3s }\n")
        try e2e.writeVariant(variant)
        let worker = try WorkerProcess(environment: e2e.environment.merging(["REDIS_PASSWORD": "secret"]) { $1 }, healthPort: freePort())
        // The worker is connecting to Redis, waiting for the answer to AUTH that never comes: the file is read already.
        try await poll("the worker connecting to Redis") { silent.hasPendingConnection }
        try e2e.writeVariant(variant.replacingOccurrences(of: "command_timeout: 3s", with: "command_timeout: 2s"))
        worker.signal(SIGHUP)
        try await worker.waitUntilReady()
        #expect(worker.log.contains(#""message":"starting""#), "\(worker.log.suffix(1500))")
        try await poll("the edit made while starting is in use") { worker.log.contains("pipeline reloaded") }
        #expect(worker.log.contains(#""changed":"resource redis"#), "\(worker.log.suffix(1500))")
        try await worker.stop()
        await e2e.cleanUp()
    }
}

/// A TCP port on loopback whose connections the kernel completes and nobody ever answers.
final class SilentListener: @unchecked Sendable {
    let port: Int
    private let socketFD: Int32

    init() throws {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        socketFD = descriptor
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, length) == 0 && listen(descriptor, 16) == 0 && getsockname(descriptor, $0, &length) == 0 }
        }
        guard bound else { throw TestFailure("cannot listen on loopback: \(String(cString: strerror(errno)))") }
        port = Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { close(socketFD) }

    /// Whether a connection waits to be accepted.
    var hasPendingConnection: Bool {
        var entry = pollfd(fd: socketFD, events: Int16(POLLIN), revents: 0)
        return poll(&entry, 1, 0) > 0
    }
}
