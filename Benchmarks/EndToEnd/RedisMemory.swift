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
    static let kinds = [("idempotency key (24 h)", "idempotency:outbound:*"), ("wamid mapping (24 h)", "wamid:*"), ("status order (7 d)", "status:*")]

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
        // Completion writes and event confirms trail the last request a little: wait until the key count holds still.
        var keys = -1
        while true {
            let now = try await redis.checked(["DBSIZE"]).integer ?? 0
            if now == keys { break }
            keys = now
            try await Task.sleep(for: .milliseconds(500))
        }
        let after = try await usedMemory(redis)
        let messages = try await count("idempotency:outbound:*", redis)
        print("redis-server \(try await version(redis)), fresh, \(options.messages) messages published (\(messages) distinct, each with its state), drained at \(Int(drain.throughput)) msg/s")
        print("used_memory grew by \(after - before) bytes: \(String(format: "%.1f", Double(after - before) / Double(max(1, messages)))) bytes per message\n")
        print("| kind of key | keys | MEMORY USAGE, mean of 200 (bytes) | encoding | name + value (bytes) |\n|---|---|---|---|---|")
        for (kind, pattern) in Self.kinds {
            let sample = try await self.sample(pattern, redis, count: 200)
            guard !sample.isEmpty else {
                print("| \(kind) | 0 | — | — | — |")
                continue
            }
            var usage = 0, sizes = 0
            var encodings: Set<String> = []
            for key in sample {
                usage += try await redis.checked(["MEMORY", "USAGE", key, "SAMPLES", "0"]).integer ?? 0
                encodings.insert(try await redis.checked(["OBJECT", "ENCODING", key]).string ?? "?")
                sizes += key.utf8.count + (try await valueSize(key, redis))
            }
            print("| \(kind) | \(try await count(pattern, redis)) | \(usage / sample.count) | \(encodings.sorted().joined(separator: ", ")) | \(sizes / sample.count) |")
        }
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
