import Logging
import PipelineKit
import RedisClient
import RedisPlugin
import Testing

/// The stores a capability is tested on, with the same cases: the real redis-server of
/// `scripts/test`, the Redis Cluster of its `cluster` profile (three masters), and the in-memory twin.
public enum StoreKind: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case redis, cluster, memory

    public var testDescription: String { rawValue }

    /// A store of this kind as the capability under test (`(any KeyValueStore).self`, …); nil when it lacks it.
    public func store<Capability>(as capability: Capability.Type) -> Capability? {
        switch self {
        case .redis:
            var logger = Logger(label: "test.redis")
            logger.logLevel = .critical
            return RedisStore(client: RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: TestServices.redisPort)), logger: logger) as? Capability
        case .cluster:
            var logger = Logger(label: "test.redis-cluster")
            logger.logLevel = .critical
            return RedisStore(client: RedisClient(configuration: RedisConfiguration(cluster: TestServices.redisCluster)), logger: logger) as? Capability
        case .memory:
            return MemoryStore(clock: SystemWallClock()) as? Capability
        }
    }
}
