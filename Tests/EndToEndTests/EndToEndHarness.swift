import AMQPClient
import Foundation
import PipelineKit
import RedisClient
import TestSupport

/// One end-to-end scenario: its own queue, id prefix, health port, Cloud API stand-in
/// and a copy of the shipped pipeline with a test variant (short retries and lease).
final class EndToEndHarness: @unchecked Sendable {
    let queue = uniqueName("e2e")
    let prefix = uniqueName("id")
    let server = CloudAPIStandInServer()
    let inspector: QueueInspector
    let folder: URL
    var redisPort = TestServices.redisPort
    private(set) var baseURL = ""
    static let token = "EAAG-e2e-token"

    static let variant = """
        source:
          with:
            prefetch: 64
            concurrency: 16
            drain_timeout: 10s
            pause: 1s
            max_park: 2s
            retry: { max_attempts: 5, backoff: [300ms, 1s] }
        resources:
          whatsapp:
            with: { timeout: 2s }
        steps:
          - name: idempotency
            with: { lease: 3s }
        """

    /// The brokers the worker and the inspector use (the test broker, or a cluster's nodes).
    let brokers: [String]

    init(brokers: [String] = [TestServices.rabbitURL], cloudAPI transport: StandInTransport = .plain) async throws {
        self.brokers = brokers
        inspector = try QueueInspector(urls: brokers)
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let base = try String(contentsOf: TestServices.repository.appendingPathComponent("pipelines/outbound.yaml"), encoding: .utf8)
        try base.write(to: folder.appendingPathComponent("outbound.yaml"), atomically: true, encoding: .utf8)
        try Self.variant.write(to: folder.appendingPathComponent("outbound.e2e.yaml"), atomically: true, encoding: .utf8)
        baseURL = try await server.start(transport)
    }

    var pipelinePath: String { folder.appendingPathComponent("outbound.yaml").path }

    var environment: [String: String] {
        [
            "RABBITMQ_URL": brokers.joined(separator: ","), "OUTBOUND_QUEUE": queue,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redisPort),
            "WHATSAPP_API_URL": baseURL, "WHATSAPP_ACCESS_TOKEN": Self.token, "WHATSAPP_PHONE_NUMBER_ID": "1055",
            "LOG_FORMAT": "json", "LOG_LEVEL": "info",
            "PIPELINE_FILE": pipelinePath, "PIPELINE_ENV": "e2e",
        ]
    }

    func startWorker(extra: [String: String] = [:], directory: URL? = nil) async throws -> WorkerProcess {
        let worker = try WorkerProcess(environment: environment.merging(extra) { $1 }, healthPort: freePort(), directory: directory)
        try await worker.waitUntilReady()
        return worker
    }

    func id(_ number: Int) -> String { "\(prefix)-\(number)" }

    /// The recipient of message `number`: distinct per number.
    func recipient(_ number: Int) -> String { "+5511\(String(format: "%09d", number))" }

    func textMessage(_ number: Int) -> [UInt8] {
        Array(#"{"internalId":"\#(id(number))","to":"\#(recipient(number))","type":"text","text":{"body":"Message \#(number)"}}"#.utf8)
    }

    /// A text message from `sender` (its `phoneNumberId`) to `to` (default: the number's own recipient), with more members in `extra`.
    func message(_ number: Int, sender: String? = nil, to: String? = nil, extra: String = "") -> [UInt8] {
        let from = sender.map { #","phoneNumberId":"\#($0)""# } ?? ""
        return Array(#"{"internalId":"\#(id(number))","to":"\#(to ?? recipient(number))","type":"text","text":{"body":"Message \#(number)"}\#(from)\#(extra)}"#.utf8)
    }

    /// Replaces the test variant (the default one plus `extra` YAML).
    func writeVariant(_ text: String) throws {
        try text.write(to: folder.appendingPathComponent("outbound.e2e.yaml"), atomically: true, encoding: .utf8)
    }

    func publish(_ bodies: [[UInt8]]) async throws {
        try await inspector.publish(bodies, to: queue)
    }

    /// Requests the stand-in received for this scenario's ids, by internal number (the `to` suffix).
    var requestsByRecipient: [String: Int] { server.countsByRecipient }

    /// Waits until the source queue and the first retry queue are empty.
    func waitUntilDrained(timeout: Duration = .seconds(60)) async throws {
        try await poll("queues drained", timeout: timeout) {
            let depth = try await inspector.depth(queue)
            let retrying = try await inspector.depth("\(queue).retry.1")
            return depth == 0 && retrying == 0
        }
    }

    /// How many messages `workers` have finished with (completed, duplicate, dropped, dead-lettered
    /// or expired), from their `/metrics`: `outbound_messages_total` but for `retry` and `requeue`,
    /// whose messages come back. Nil while one of them does not answer.
    static func finished(by workers: [WorkerProcess]) async -> Int? {
        var total = 0
        for worker in workers {
            guard let metrics = await worker.text("/metrics") else { return nil }
            for line in metrics.split(separator: "\n") where line.hasPrefix("outbound_messages_total{")
                && !line.contains(#"outcome="retry""#) && !line.contains(#"outcome="requeue""#) {
                total += line.split(separator: " ").last.flatMap { Double($0) }.map { Int($0) } ?? 0
            }
        }
        return total
    }

    /// Waits until `workers` have finished with at least `count` messages (each copy published, each
    /// decided once): from then on nothing more is sent for them. An empty queue does not say that
    /// (the last deliveries may still be in a worker's hands), and a fixed sleep after it only guesses.
    func waitUntilFinished(_ count: Int, by workers: [WorkerProcess], timeout: Duration = .seconds(60)) async throws {
        var finished: Int?
        do {
            try await poll("\(count) messages finished", timeout: timeout) {
                finished = await Self.finished(by: workers)
                return (finished ?? 0) >= count
            }
        } catch {
            let seen = finished.map { String($0) } ?? "unknown (no /metrics)"
            throw TestFailure("\(seen) of \(count) messages finished after \(timeout)")
        }
    }

    /// Waits until the source queue and its delay queues hold no message, ready or unacknowledged:
    /// everything acknowledged, nothing left in a worker's hands nor waiting for the broker to put it
    /// back after a worker was stopped or killed. For counts after a restart, when no one worker has
    /// seen every message. The test broker only (`rabbitmqctl`, about 0.7 s a look).
    func waitUntilSettled(timeout: Duration = .seconds(60)) async throws {
        let queues = [queue, "\(queue).retry.1", "\(queue).retry.2"]
        var held: [String: Int] = [:]
        do {
            try await poll("nothing held in \(queue) and its delay queues", timeout: timeout) {
                let counts = try TestServices.messagesIncludingUnacknowledged()
                guard counts[queue] != nil else { throw TestFailure("rabbitmqctl list_queues does not list \(queue)") }
                held = counts.filter { queues.contains($0.key) }
                return held.values.allSatisfy { $0 == 0 }
            }
        } catch let failure as TestFailure where failure.description.hasPrefix("timed out") {
            throw TestFailure("\(failure): ready and unacknowledged \(held)")
        }
    }

    /// Waits until the idempotency key of `id` is completed.
    func waitUntilCompleted(_ id: String, using redis: RedisClient) async throws {
        try await poll("key of \(id) completed") {
            (try await redis.send(["GET", "idempotency:outbound:\(id)"]).string)?.contains(#""status":"completed""#) == true
        }
    }

    func redis() -> RedisClient {
        RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: redisPort))
    }

    func cleanUp() async {
        server.stop()
        // The retry queues stay (empty): quorum queues dead-lettering at least once that are deleted
        // shortly before a broker restart crashed RabbitMQ 3.10's dead-letter workers on recovery, after
        // which no such queue could be declared (541) until the next restart.
        await inspector.delete([queue, "\(queue).urgent", "\(queue).bulk", "\(queue).dead"])
        try? FileManager.default.removeItem(at: folder)
    }
}
