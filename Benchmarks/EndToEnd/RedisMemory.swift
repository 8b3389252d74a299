import AMQPClient
import Foundation
import RedisClient
import TestSupport

/// Redis memory per message (SPEC 17, `scripts/bench redis-memory`): the release worker drains
/// `--messages` on a Redis of its own, and the growth of `used_memory` (after the writes settle) is
/// divided among the messages whose state it keeps; `MEMORY USAGE` and `OBJECT ENCODING` of a
/// sample of each kind of key say where the bytes went.
struct RedisMemory {
    let options: Options
    let standIn: StandIn
    let apiURL: String
    let publisher: AMQPPublisher

    /// The key kinds a message leaves, by the pattern of their names.
    static let kinds = [("idempotency key (24 h)", "idempotency:outbound:*"), ("wamid mapping (24 h)", "wamids:*"), ("status order (7 d)", "statuses:*")]
    /// The statuses each wamid gets through the statuses pipeline, in Meta's order.
    static let statuses = ["sent", "delivered", "read"]
    static let appSecret = "bench-app-secret"

    @MainActor
    func run() async throws {
        let port = freePort()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("redis-memory-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let server = try spawn(["/usr/bin/redis-server", "--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", folder.path],
                               environment: [:], log: folder.appendingPathComponent("redis.log").path)
        defer { kill(server, SIGTERM) }
        let redis = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: port, poolSize: 1))
        let deadline = ContinuousClock.now + .seconds(10)
        while (try? await redis.checked(["PING"]).string) != "PONG" {
            guard ContinuousClock.now < deadline else { throw BenchFailure("the bench's own redis-server on \(port) did not start") }
            try await Task.sleep(for: .milliseconds(50))
        }
        var local = options
        local.redisPort = port
        let bench = try Bench(options: local, standIn: standIn, apiURL: apiURL, publisher: publisher)
        let before = try await usedMemory(redis)
        let drain = try await bench.measureDrain(.worker, count: options.messages, concurrency: options.concurrency, label: "mem")
        try await settle(redis)
        let after = try await usedMemory(redis)
        let sends = try await completedSends(redis)
        print("redis-server \(try await version(redis)), fresh, \(options.messages) messages published (\(sends.count) distinct, each with its state), drained at \(Int(drain.throughput)) msg/s")
        print("24 h state: used_memory grew by \(after - before) bytes: \(String(format: "%.1f", Double(after - before) / Double(max(1, sends.count)))) bytes per message")

        let statusesBefore = after
        let took = try await postStatuses(sends, redisPort: port, folder: folder)
        try await settle(redis)
        let statusesAfter = try await usedMemory(redis)
        print("7 d state: \(sends.count) wamids × \(Self.statuses.joined(separator: ", ")) through the statuses pipeline in \(String(format: "%.1f", took)) s; used_memory grew by \(statusesAfter - statusesBefore) bytes: \(String(format: "%.1f", Double(statusesAfter - statusesBefore) / Double(max(1, sends.count)))) bytes per wamid\n")

        print("| kind of key | keys | fields | MEMORY USAGE per key, mean of 200 (bytes) | per wamid (bytes) | encoding | name + value (bytes) |\n|---|---|---|---|---|---|---|")
        for (kind, pattern) in Self.kinds {
            let sample = try await self.sample(pattern, redis, count: 200)
            guard !sample.isEmpty else {
                print("| \(kind) | 0 | — | — | — | — | — |")
                continue
            }
            var usage = 0, sizes = 0, fields = 0
            var encodings: Set<String> = []
            for key in sample {
                usage += try await redis.checked(["MEMORY", "USAGE", key, "SAMPLES", "0"]).integer ?? 0
                encodings.insert(try await redis.checked(["OBJECT", "ENCODING", key]).string ?? "?")
                sizes += key.utf8.count + (try await valueSize(key, redis))
                fields += try await redis.checked(["TYPE", key]).string == "hash" ? (try await redis.checked(["HLEN", key]).integer ?? 1) : 1
            }
            let keys = try await count(pattern, redis)
            print("| \(kind) | \(keys) | \(fields / sample.count) | \(usage / sample.count) | \(usage / max(1, fields)) | \(encodings.sorted().joined(separator: ", ")) | \(sizes / sample.count) |")
        }
    }

    /// Waits until the key count holds still: completion writes and event confirms trail the last request a little.
    private func settle(_ redis: RedisClient) async throws {
        var keys = -1
        while true {
            let now = try await redis.checked(["DBSIZE"]).integer ?? 0
            if now == keys { return }
            keys = now
            try await Task.sleep(for: .milliseconds(500))
        }
    }

    /// Every completed idempotency key's wamid and internalId.
    private func completedSends(_ redis: RedisClient) async throws -> [(wamid: String, internalID: String)] {
        let keys = try await scan("idempotency:outbound:*", redis, limit: .max)
        var sends: [(wamid: String, internalID: String)] = []
        for start in stride(from: 0, to: keys.count, by: 1000) {
            let chunk = Array(keys[start..<min(start + 1000, keys.count)])
            guard case .array(let values) = try await redis.checked(["MGET"] + chunk) else { continue }
            for (key, value) in zip(chunk, values) {
                guard let text = value.string, let object = try? JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any],
                      let wamid = object["wamid"] as? String else { continue }
                sends.append((wamid, String(key.dropFirst("idempotency:outbound:".count))))
            }
        }
        return sends
    }

    /// Runs the release worker on `pipelines/statuses.yaml` and POSTs each status of every send,
    /// 100 statuses a signed POST, 8 POSTs at a time, each until answered 200; the seconds it took.
    private func postStatuses(_ sends: [(wamid: String, internalID: String)], redisPort: Int, folder: URL) async throws -> Double {
        let webhookPort = freePort(), healthPort = freePort()
        let worker = try spawn([options.worker, "run", "--pipeline", "pipelines/statuses.yaml"], environment: [
            "WEBHOOK_PORT": String(webhookPort), "STATUSES_HEALTH_PORT": String(healthPort), "WHATSAPP_VERIFY_TOKEN": "bench",
            "WHATSAPP_APP_SECRET": Self.appSecret, "RABBITMQ_URL": options.rabbitURL, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redisPort),
            "LOG_LEVEL": options.logLevel, "LOG_FORMAT": "json",
        ], log: folder.appendingPathComponent("statuses.log").path)
        defer { kill(worker, SIGTERM) }
        let url = "http://127.0.0.1:\(webhookPort)/webhooks/whatsapp"
        let deadline = ContinuousClock.now + .seconds(30)
        while (try? await MetaWebhook.post("{}", to: url, signature: MetaWebhook.signature("{}", secret: Self.appSecret), timeout: .seconds(1))) != 200 {
            guard ContinuousClock.now < deadline else { throw BenchFailure("the statuses pipeline did not answer on \(webhookPort); its log: \(folder.path)/statuses.log") }
            try await Task.sleep(for: .milliseconds(100))
        }
        let bodies = Self.statuses.flatMap { status in
            stride(from: 0, to: sends.count, by: 100).map { start in
                MetaWebhook.statuses(sends[start..<min(start + 100, sends.count)].map { ($0.wamid, status, $0.internalID) })
            }
        }
        let started = ContinuousClock.now
        for wave in stride(from: 0, to: bodies.count, by: 8) {
            try await withThrowingTaskGroup(of: Void.self) { group in
                for body in bodies[wave..<min(wave + 8, bodies.count)] {
                    group.addTask {
                        var answer = 0
                        for _ in 0..<20 {
                            answer = (try? await MetaWebhook.post(body, to: url, signature: MetaWebhook.signature(body, secret: Self.appSecret))) ?? 0
                            if answer == 200 { return }
                            try await Task.sleep(for: .milliseconds(200))
                        }
                        throw BenchFailure("the statuses pipeline answered \(answer) to a POST 20 times")
                    }
                }
                try await group.waitForAll()
            }
        }
        let took = ContinuousClock.now - started
        return Double(took.components.seconds) + Double(took.components.attoseconds) / 1e18
    }

    private func usedMemory(_ redis: RedisClient) async throws -> Int {
        let text = try await redis.checked(["INFO", "memory"]).string ?? ""
        return text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("used_memory:") }.flatMap { Int($0.dropFirst("used_memory:".count)) } ?? 0
    }

    private func version(_ redis: RedisClient) async throws -> String {
        let text = try await redis.checked(["INFO", "server"]).string ?? ""
        return text.split(whereSeparator: \.isNewline).first { $0.hasPrefix("redis_version:") }.map { String($0.dropFirst("redis_version:".count)) } ?? "?"
    }

    /// Keys matching `pattern`, counted by scanning.
    private func count(_ pattern: String, _ redis: RedisClient) async throws -> Int {
        try await scan(pattern, redis, limit: .max).count
    }

    private func sample(_ pattern: String, _ redis: RedisClient, count: Int) async throws -> [String] {
        try await scan(pattern, redis, limit: count)
    }

    private func scan(_ pattern: String, _ redis: RedisClient, limit: Int) async throws -> [String] {
        var cursor = "0"
        var keys: [String] = []
        repeat {
            guard case .array(let parts) = try await redis.checked(["SCAN", cursor, "MATCH", pattern, "COUNT", "1000"]), parts.count == 2,
                  let next = parts[0].string, case .array(let found) = parts[1] else { break }
            keys += found.compactMap(\.string)
            cursor = next
        } while cursor != "0" && keys.count < limit
        return Array(keys.prefix(limit))
    }

    /// The bytes of a key's value: a string's length, or a hash's fields and values.
    private func valueSize(_ key: String, _ redis: RedisClient) async throws -> Int {
        switch try await redis.checked(["TYPE", key]).string {
        case "string"?: return try await redis.checked(["STRLEN", key]).integer ?? 0
        case "hash"?:
            guard case .array(let items) = try await redis.checked(["HGETALL", key]) else { return 0 }
            return items.compactMap(\.string).reduce(0) { $0 + $1.utf8.count }
        default: return 0
        }
    }
}
