import Logging
import Metrics
import PipelineKit
import RedisClient
import Synchronization

/// The `redis` resource: idempotency keys in Redis, compare-and-set and owner-checked
/// delete as Lua scripts. Logs an outage once when it starts and once when it ends.
public final class RedisIdempotencyStore: IdempotencyStore {
    public let client: RedisClient
    private let logger: Logger
    private let failures = Mutex(0)
    private let errors = Counter(label: "outbound_redis_errors_total")

    static let claim = RedisScript("""
        if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return false end
        return redis.call('GET', KEYS[1])
        """)
    static let compareAndSet = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3]) return 1 end
        return 0
        """)
    static let deleteIfEqual = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    public init(client: RedisClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Builds the store from `redis` settings and connects; a refused password or database is an error,
    /// an unreachable server only a warning (the steps' degradation policy covers it).
    public static func connect(settings: Settings, logger: Logger) async throws -> RedisIdempotencyStore {
        let configuration = RedisConfiguration(
            host: try settings.string("host"), port: try settings.integer("port"), password: settings.optionalString("password"),
            database: try settings.integer("db"), connectTimeout: try settings.duration("connect_timeout"),
            commandTimeout: try settings.duration("command_timeout"), poolSize: try settings.integer("pool_size"))
        let store = RedisIdempotencyStore(client: RedisClient(configuration: configuration), logger: logger)
        do {
            try await store.client.connect()
        } catch let error where error.isAuthentication {
            throw error
        } catch {
            logger.warning("redis is not reachable at start; steps apply their degradation policy until it is", metadata: ["error": "\(error)"])
        }
        return store
    }

    public func setIfAbsent(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) -> String? {
        try await run { () async throws(RedisError) in
            try await client.evaluate(Self.claim, keys: [key], arguments: [value, Self.seconds(ttl)]).string
        }
    }

    public func compareAndSet(_ key: String, expected: String, new: String, ttl: Duration) async throws(StoreUnavailable) -> Bool {
        try await run { () async throws(RedisError) in
            try await client.evaluate(Self.compareAndSet, keys: [key], arguments: [expected, new, Self.seconds(ttl)]).integer == 1
        }
    }

    public func deleteIfEqual(_ key: String, expected: String) async throws(StoreUnavailable) -> Bool {
        try await run { () async throws(RedisError) in
            try await client.evaluate(Self.deleteIfEqual, keys: [key], arguments: [expected]).integer == 1
        }
    }

    public func set(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) {
        _ = try await run { () async throws(RedisError) in
            try await client.checked(["SET", key, value, "EX", Self.seconds(ttl)])
        }
    }

    public func read(_ key: String) async throws(StoreUnavailable) -> (value: String, ttl: Duration?)? {
        try await run { () async throws(RedisError) -> (value: String, ttl: Duration?)? in
            guard let value = try await client.checked(["GET", key]).string else { return nil }
            let ttl = try await client.checked(["TTL", key]).integer
            return (value, ttl.flatMap { $0 >= 0 ? .seconds($0) : nil })
        }
    }

    public func health() async -> HealthStatus {
        do {
            let reply = try await client.send(["PING"])
            return reply == .status("PONG") ? .up : .down("unexpected PING answer")
        } catch {
            return .down(error.description)
        }
    }

    public func shutdown() async {}

    /// Runs a command, mapping errors to `StoreUnavailable` and logging outages once.
    private func run<T>(_ body: () async throws(RedisError) -> T) async throws(StoreUnavailable) -> T {
        do {
            let result = try await body()
            let failed = failures.withLock { count in
                defer { count = 0 }
                return count
            }
            if failed > 0 { logger.notice("redis is available again", metadata: ["failed_commands": "\(failed)"]) }
            return result
        } catch {
            errors.increment()
            let first = failures.withLock { count in
                count += 1
                return count == 1
            }
            if first { logger.warning("redis unavailable", metadata: ["error": "\(error)"]) }
            throw StoreUnavailable(error.description)
        }
    }

    private static func seconds(_ ttl: Duration) -> String {
        String(max(1, ttl.components.seconds))
    }
}

extension RedisError {
    var isAuthentication: Bool {
        if case .authentication = self { return true }
        return false
    }
}
