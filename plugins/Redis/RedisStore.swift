import Logging
import Metrics
import PipelineKit
import RedisClient
import Synchronization

/// The `redis` resource: a pooled hiredis client that steps use through the capabilities their
/// plugins add to it (idempotency keys, send slots, status ledgers), each as Lua scripts.
/// Logs an outage once when it starts and once when it ends.
public final class RedisStore: Resource {
    public let client: RedisClient
    /// Where the wamid → internalId mapping lives (SPEC 10, 17).
    public let wamids: WamidBuckets
    /// Where the statuses published per wamid live (SPEC 10, 17).
    public let statuses: WamidBuckets
    private let logger: Logger
    private let failures = Mutex(0)
    private let errors = Counter(label: "outbound_redis_errors_total")
    /// The last error a command got as its answer (OOM, MISCONF, READONLY, NOPERM…), and when.
    private let lastRefusal = Mutex<(reason: String, at: ContinuousClock.Instant)?>(nil)
    /// How long `/health` reports Redis down after a command was refused.
    private let refusalShown: Duration

    /// `refusalShown`: how long `health` reports Redis down after a command got an error as its answer.
    public init(client: RedisClient, buckets: Int = RedisSettings.defaultStateBuckets, refusalShown: Duration = .seconds(10), logger: Logger) {
        self.client = client
        self.wamids = WamidBuckets(prefix: "wamids", count: buckets)
        self.statuses = WamidBuckets(prefix: "statuses", count: buckets)
        self.refusalShown = refusalShown
        self.logger = logger
    }

    /// Builds the store from `redis` settings and connects; a refused password or database is an error,
    /// an unreachable server only a warning (the steps' degradation policy covers it).
    public static func connect(settings: Settings, logger: Logger) async throws -> RedisStore {
        let store = RedisStore(client: RedisClient(configuration: RedisSettings.configuration(settings)), buckets: settings[RedisSettings.stateBuckets], logger: logger)
        do {
            try await store.client.connect()
        } catch let error where error.isAuthentication {
            throw error
        } catch {
            logger.warning("redis is not reachable at start; steps apply their degradation policy until it is", metadata: ["error": "\(error)"])
        }
        return store
    }

    /// Down when Redis — on a Redis Cluster, any master — does not answer PING, or answers it but
    /// refused a command in the last `refusalShown` (out of memory, writes stopped after a failed
    /// save, a read-only replica, an ACL): steps then apply their degradation policy (`fail_open`
    /// sends without deduplication), which a PING alone would hide.
    public func health() async -> HealthStatus {
        if let problem = await client.unansweredPing() { return .down(problem) }
        guard let refusal = lastRefusal.withLock({ $0 }), ContinuousClock.now - refusal.at < refusalShown else { return .up }
        return .down("a command was refused \((ContinuousClock.now - refusal.at).components.seconds) s ago: \(refusal.reason)")
    }

    public func shutdown() async {}

    /// Runs commands, mapping errors to `StoreUnavailable` and logging outages once.
    public func perform<T>(_ body: () async throws(RedisError) -> T) async throws(StoreUnavailable) -> T {
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
            if case .server(let reason) = error { lastRefusal.withLock { $0 = (reason, .now) } }
            let first = failures.withLock { count in
                count += 1
                return count == 1
            }
            if first { logger.warning("redis unavailable", metadata: ["error": "\(error)"]) }
            throw StoreUnavailable(error.description)
        }
    }

    /// A TTL as the whole seconds `EX` takes (at least 1).
    public static func seconds(_ ttl: Duration) -> String {
        String(max(1, ttl.components.seconds))
    }
}

extension RedisError {
    var isAuthentication: Bool {
        if case .authentication = self { return true }
        return false
    }
}

extension ResourcePlugin {
    /// The `redis` resource plugin (hiredis).
    public static let redis = ResourcePlugin(
        name: "redis",
        summary: "Redis over hiredis: pooled, pipelined, with timeouts and reconnect",
        settings: RedisSettings.schema,
        check: RedisSettings.check,
        make: { context in try await RedisStore.connect(settings: context.settings, logger: context.logger) }
    )
}
