import Foundation
import PipelineKit
import Testing
import TestSupport

/// TLS end to end (SPEC 11): the worker over `amqps://` to the test broker's TLS listener, the
/// Cloud API stand-in over HTTPS with HTTP/2, and what `plan` shows of the secrets involved.
/// The certificates are the ones `scripts/services` made with openssl for this checkout.
@Suite(.serialized) struct TransportSecurityTests {
    static var tls: String { TestServices.tlsDirectory }

    @Test func theWorkerConsumesAndPublishesEventsOverAMQPS() async throws {
        let e2e = try await EndToEndHarness()
        defer { Task { await e2e.cleanUp() } }
        try await e2e.publish((0..<20).map(e2e.textMessage))
        let worker = try await e2e.startWorker(extra: ["RABBITMQ_URL": TestServices.rabbitTLSURL, "RABBITMQ_CA_FILE": "\(Self.tls)/ca.pem"])
        try await e2e.waitUntilDrained()
        try await poll("20 sent") { e2e.requestsByRecipient.count == 20 }
        #expect(e2e.requestsByRecipient.values.allSatisfy { $0 == 1 })
        #expect(worker.log.contains("amqps://guest:***@localhost"), "consumed over TLS: \(worker.log.suffix(2000))")
        #expect(try await worker.stop() == 0)
    }

    /// A CA that did not sign the broker's certificate, or `amqps://` to a port without TLS, stops the
    /// worker at start with exit 3 and a message naming TLS; nothing is consumed, and nothing falls
    /// back to plaintext.
    @Test(arguments: ["wrong CA", "plaintext port"])
    func aFailedTLSCheckStopsTheWorkerAtStart(_ scenario: String) async throws {
        let e2e = try await EndToEndHarness()
        defer { Task { await e2e.cleanUp() } }
        try await e2e.publish([e2e.textMessage(1)])
        let url = scenario == "wrong CA" ? TestServices.rabbitTLSURL : TestServices.rabbitURL.replacingOccurrences(of: "amqp://", with: "amqps://")
        let ca = scenario == "wrong CA" ? "other-ca.pem" : "ca.pem"
        let worker = try WorkerProcess(environment: e2e.environment.merging(["RABBITMQ_URL": url, "RABBITMQ_CA_FILE": "\(Self.tls)/\(ca)"]) { $1 }, healthPort: freePort())
        #expect(try await worker.waitForExit(timeout: .seconds(30)) == 3, "exit 3 at start: \(worker.log.suffix(1500))")
        #expect(worker.log.contains("tls:"), "the error names TLS: \(worker.log.suffix(1500))")
        #expect(try await e2e.inspector.depth(e2e.queue) == 1, "nothing consumed")
        #expect(e2e.server.requests.isEmpty)
    }

    /// Over HTTPS with HTTP/2 offered, every request of 16 in flight shares one connection (HTTP/2
    /// multiplexing; HTTP/1.1 cannot, and over it the same load takes several connections).
    @Test(arguments: [true, false])
    func theCloudAPIIsReachedOverHTTPSAndHTTP2WhenOffered(_ http2: Bool) async throws {
        let e2e = try await EndToEndHarness(cloudAPI: .tls(certificate: "\(Self.tls)/server.pem", key: "\(Self.tls)/server.key", http2: http2))
        defer { Task { await e2e.cleanUp() } }
        e2e.server.answer { _, _ in .stall(.milliseconds(20)) }
        let worker = try await e2e.startWorker(extra: ["WHATSAPP_CA_FILE": "\(Self.tls)/ca.pem", "WHATSAPP_THROUGHPUT": "10000"])
        try await e2e.publish((0..<200).map(e2e.textMessage))
        try await poll("200 sent over HTTPS") { e2e.requestsByRecipient.count == 200 }
        try await e2e.waitUntilDrained()
        #expect(e2e.requestsByRecipient.values.allSatisfy { $0 == 1 })
        let connections = Set(e2e.server.requests.compactMap(\.clientPort)).count
        if http2 {
            #expect(connections == 1, "HTTP/2: one multiplexed connection, found \(connections)")
        } else {
            #expect(connections > 1, "HTTP/1.1: a connection per request in flight, found \(connections)")
        }
        #expect(try await worker.stop() == 0)
    }

    /// A Cloud API certificate the worker does not trust is a configuration failure (SPEC 6): every
    /// message waits, nothing is dead-lettered or counts an attempt, `/health` says what is wrong; the
    /// CA put right and SIGHUP sends each message once. Before, each attempt waited the whole request
    /// timeout and then retried, and after `max_attempts` the queue was dead-lettered.
    @Test func anUntrustedCloudAPICertificatePausesUntilTheCAIsFixed() async throws {
        let e2e = try await EndToEndHarness(cloudAPI: .tls(certificate: "\(Self.tls)/server.pem", key: "\(Self.tls)/server.key", http2: true))
        defer { Task { await e2e.cleanUp() } }
        let env = e2e.folder.appendingPathComponent(".env")
        try "WHATSAPP_CA_FILE=\(Self.tls)/other-ca.pem\n".write(to: env, atomically: true, encoding: .utf8)
        let worker = try await e2e.startWorker(directory: e2e.folder)
        try await e2e.publish((0..<10).map(e2e.textMessage))
        var health: JSONValue?
        try await poll("/health says the certificate is not trusted") {
            health = await worker.get("/health")?.body
            return health?["reason"]?.stringValue?.contains("not trusted") == true
        }
        #expect(health?["status"]?.stringValue == "degraded")
        // Past the 2 s request timeout and two backoff steps: an attempt-counting retry would have dead-lettered by now.
        try await Task.sleep(for: .seconds(4))
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered for a configuration failure")
        #expect(e2e.server.requests.isEmpty, "no request got through")
        try "WHATSAPP_CA_FILE=\(Self.tls)/ca.pem\n".write(to: env, atomically: true, encoding: .utf8)
        worker.signal(SIGHUP)
        try await poll("10 sent once the CA is right", timeout: .seconds(30)) { e2e.requestsByRecipient.count == 10 }
        try await e2e.waitUntilDrained()
        #expect(e2e.requestsByRecipient.values.allSatisfy { $0 == 1 }, "each sent once")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        #expect(try await worker.stop() == 0)
    }

    /// `plan` shows the Sentinel password as *** and key files by path, never their contents.
    @Test func planShowsPathsAndHidesSecrets() throws {
        let environment = [
            "WHATSAPP_ACCESS_TOKEN": "EAAG-plan", "REDIS_SENTINELS": "127.0.0.1:26479", "REDIS_MASTER_NAME": "outbound",
            "REDIS_SENTINEL_PASSWORD": "sentinel-s3cret", "RABBITMQ_URL": TestServices.rabbitTLSURL,
            "RABBITMQ_CA_FILE": "\(Self.tls)/ca.pem", "RABBITMQ_CERT_FILE": "\(Self.tls)/client.pem", "RABBITMQ_KEY_FILE": "\(Self.tls)/client.key",
        ]
        let plan = try TestServices.run(TestServices.executable, ["plan", "--env", "prod", "--explain"], environment: environment)
        #expect(plan.status == 0, "\(plan.output)")
        #expect(plan.output.contains("\(Self.tls)/client.key"), "the key file by path: \(plan.output)")
        #expect(plan.output.contains("sentinel_password"))
        #expect(!plan.output.contains("sentinel-s3cret"), "the Sentinel password never shown")
        #expect(!plan.output.contains("PRIVATE KEY") && !plan.output.contains("BEGIN"), "no key or certificate contents")
        #expect(!plan.output.contains("EAAG-plan"))
    }
}
