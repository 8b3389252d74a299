import Foundation
import Testing
import TestSupport

/// `outbound-worker test`: the runner people use to test pipelines.
@Suite struct PipelineTestCommandTests {
    private func write(_ text: String) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("case.yaml").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    private var pipeline: String { TestServices.repository.appendingPathComponent("pipelines/outbound.yaml").path }

    @Test func shippedCasesPass() throws {
        let result = try TestServices.run(TestServices.executable, ["test"])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains(" passed, 0 failed"))
        #expect(!result.output.contains("✗"))
    }

    /// SPEC 7's example as written: no `environment`, and nothing in the process's either. The
    /// shipped pipeline needs a token and a sender only the stand-in would see: the runner gives
    /// its own. It reported the file broken (`WHATSAPP_ACCESS_TOKEN is not set`).
    @Test func theSpecsExampleRunsWithoutAnyEnvironment() throws {
        let path = try write("""
            pipeline: \(pipeline)
            cases:
              - name: text message is sent once
                input: { internalId: "a1", to: "+55 11 98765-4321", type: text, text: { body: "Hi" } }
                expect:
                  outcome: completed                       # completed | duplicate | dead_letter | retry
                  request: { to: "+5511987654321", type: text, text: { body: "Hi", preview_url: false } }   # subset match
              - name: second delivery is a duplicate
                input: { internalId: "a1", to: "+5511987654321", type: text, text: { body: "Hi" } }
                expect: { outcome: duplicate }
            """)
        let unset = ["WHATSAPP_ACCESS_TOKEN", "WHATSAPP_PHONE_NUMBER_ID"].flatMap { ["-u", $0] }
        let result = try TestServices.run("/usr/bin/env", unset + [TestServices.executable, "test", path],
                                          directory: URL(fileURLWithPath: path).deletingLastPathComponent())
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("2 passed, 0 failed"), "\(result.output)")
    }

    /// An expired message is dead-lettered (SPEC 8) and reported as `expired` (SPEC 9): SPEC 7's
    /// `dead_letter` matches it, `expired` says more, and `completed` does not.
    @Test func anExpiredMessageIsADeadLetter() throws {
        let path = try write("""
            pipeline: \(pipeline)
            cases:
              - name: as a dead letter
                input: { internalId: "x1", to: "+5511987654321", type: text, text: { body: "Hi" }, expiresAt: "2020-01-01T00:00:00Z" }
                expect: { outcome: dead_letter, error: expired }
              - name: as expired
                input: { internalId: "x2", to: "+5511987654321", type: text, text: { body: "Hi" }, expiresAt: "2020-01-01T00:00:00Z" }
                expect: { outcome: expired }
              - name: not as sent
                input: { internalId: "x3", to: "+5511987654321", type: text, text: { body: "Hi" }, expiresAt: "2020-01-01T00:00:00Z" }
                expect: { outcome: completed }
            """)
        let result = try TestServices.run(TestServices.executable, ["test", path])
        #expect(result.output.contains("2 passed, 1 failed"), "\(result.output)")
        #expect(result.output.contains("outcome: expected completed, got expired"), "\(result.output)")
    }

    /// A sender-side failure is "retried, not dead-lettered" (SPEC 6), and SPEC 7's words for it are
    /// `retry`; the worker calls it `requeue` (again without an attempt). `retry` matches it (audit:
    /// a case written as SPEC 7 says failed), `requeue` says more, `dead_letter` does not.
    @Test func aRequeueIsARetry() throws {
        let path = try write("""
            pipeline: \(pipeline)
            cases:
              - name: as a retry
                input: { internalId: "t1", to: "+5511987654321", type: text, text: { body: "Hi" } }
                whatsapp: { status: 401, error_code: 190, error_message: "Error validating access token" }
                expect: { outcome: retry, error: "code 190" }
              - name: as a requeue
                input: { internalId: "t2", to: "+5511987654321", type: text, text: { body: "Hi" } }
                whatsapp: { status: 401, error_code: 190, error_message: "Error validating access token" }
                expect: { outcome: requeue }
              - name: not as a dead letter
                input: { internalId: "t3", to: "+5511987654321", type: text, text: { body: "Hi" } }
                whatsapp: { status: 401, error_code: 190, error_message: "Error validating access token" }
                expect: { outcome: dead_letter }
              - name: a requeue that pauses nothing (a key another worker holds) is no retry (review)
                seed_key: processing
                input: { internalId: "t4", to: "+5511987654321", type: text, text: { body: "Hi" } }
                expect: { outcome: retry }
            """)
        let result = try TestServices.run(TestServices.executable, ["test", path])
        #expect(result.output.contains("2 passed, 2 failed"), "\(result.output)")
        #expect(result.output.contains("outcome: expected dead_letter, got requeue"), "\(result.output)")
        #expect(result.output.contains("outcome: expected retry, got requeue"), "\(result.output)")
    }

    @Test func aWrongExpectationFailsWithThePathOfTheDifference() throws {
        let path = try write("""
            pipeline: \(pipeline)
            environment: { WHATSAPP_ACCESS_TOKEN: t, WHATSAPP_PHONE_NUMBER_ID: "1" }
            cases:
              - name: preview flag
                input: { internalId: "w1", to: "+5511987654321", type: text, text: { body: "Hi" } }
                expect: { outcome: completed, request: { text: { preview_url: true } } }
              - name: wrong outcome
                input: { internalId: "w2", to: "1", type: text, text: { body: "Hi" } }
                expect: { outcome: completed }
            """)
        let result = try TestServices.run(TestServices.executable, ["test", path])
        #expect(result.status == 1)
        #expect(result.output.contains("✗ preview flag  (\(path):4:5)"), "\(result.output)")
        #expect(result.output.contains("request.text.preview_url: expected true, got false"))
        #expect(result.output.contains("outcome: expected completed, got dead_letter (to: not an E.164 number"))
        #expect(result.output.contains("0 passed, 2 failed"))
    }

    /// `outbound-worker test` runs the production `PipelineWorker`: what the worker does between
    /// the steps counts. `max_age` is the worker's (it sets the deadline from when the message was
    /// taken): a message paced past it is dead-lettered as expired before its request. The old
    /// virtual loop drove the executor alone and sent all three.
    @Test func casesRunOnTheWorkerThatProductionRuns() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pt-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try String(contentsOfFile: pipeline, encoding: .utf8).write(to: folder.appendingPathComponent("outbound.yaml"), atomically: true, encoding: .utf8)
        try "source:\n  with:\n    max_age: 1500ms\n".write(to: folder.appendingPathComponent("outbound.aged.yaml"), atomically: true, encoding: .utf8)
        let path = folder.appendingPathComponent("case.yaml").path
        try """
            pipeline: outbound.yaml
            env: aged
            environment: { WHATSAPP_ACCESS_TOKEN: t, WHATSAPP_PHONE_NUMBER_ID: "1", WHATSAPP_THROUGHPUT: "1" }
            cases:
              - name: three at 0.95 a second, max_age 1.5 s - the third would go at 2.1 s
                repeat: 3
                input: { internalId: "aged", to: "+5511987654321", type: text, text: { body: "Hi" } }
                expect: { requests: 2, sent_at: [0s, 1053ms] }
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let result = try TestServices.run(TestServices.executable, ["test", path])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("1 passed, 0 failed"))
    }

    @Test func aBrokenTestFileIsAnErrorWithItsPosition() throws {
        let path = try write("""
            pipeline: \(pipeline)
            cases:
              - name: typo
                input: { internalId: "b1" }
                expct: { outcome: completed }
            """)
        let result = try TestServices.run(TestServices.executable, ["test", path], environment: ["WHATSAPP_ACCESS_TOKEN": "t"])
        #expect(result.status == 1)
        #expect(result.output.contains("\(path):5:5: error: unknown key `expct` in a case; did you mean `expect`?"), "\(result.output)")
    }

    @Test func noNetworkIsOpened() throws {
        // Every endpoint points at a loopback listener that counts connection attempts.
        let listener = try LoopbackListener()
        let port = String(listener.port)
        let environment = ["RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:\(port)/%2F", "REDIS_HOST": "127.0.0.1", "REDIS_PORT": port,
                           "WHATSAPP_API_URL": "http://127.0.0.1:\(port)"]
        let result = try TestServices.run(TestServices.executable, ["test"], environment: environment)
        #expect(result.status == 0, "\(result.output)")
        #expect(listener.acceptedConnections() == 0)
    }

    @Test func junitOutputForCI() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("junit-\(UUID().uuidString).xml").path
        let result = try TestServices.run(TestServices.executable, ["test", "--format", "junit", "--output", output])
        #expect(result.status == 0)
        let xml = try String(contentsOfFile: output, encoding: .utf8)
        #expect(xml.hasPrefix("<?xml"))
        #expect(xml.contains("<testsuite name=\"pipelines/tests/outbound.yaml\""))
        #expect(!xml.contains("<failure"))
    }
}

/// A TCP listener on 127.0.0.1 that never answers; it only counts who connected.
final class LoopbackListener {
    let port: Int
    private let socketFD: Int32

    init() throws {
        let socketFD = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.socketFD = socketFD
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr = in_addr(s_addr: inet_addr("127.0.0.1"))
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socketFD, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) } }
        guard bound == 0, listen(socketFD, 64) == 0 else { throw TestFailure("cannot listen on loopback") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socketFD, $0, &length) } }
        port = Int(UInt16(bigEndian: address.sin_port))
        _ = fcntl(socketFD, F_SETFL, fcntl(socketFD, F_GETFL) | O_NONBLOCK)
    }

    deinit {
        close(socketFD)
    }

    /// Connections made so far (taken from the backlog).
    func acceptedConnections() -> Int {
        var count = 0
        while true {
            let client = accept(socketFD, nil, nil)
            guard client >= 0 else { return count }
            close(client)
            count += 1
        }
    }
}
