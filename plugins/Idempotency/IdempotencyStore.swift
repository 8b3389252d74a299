import PipelineKit

/// The store primitives the idempotency steps need; Redis in production, memory in `outbound-worker test`.
/// Every operation is atomic on its key.
public protocol IdempotencyStore: Resource {
    /// Sets `key` to `value` with `ttl` when absent: nil when it was set, else the current value.
    func setIfAbsent(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) -> String?
    /// Replaces the value only if it is still `expected`; whether it did.
    func compareAndSet(_ key: String, expected: String, new: String, ttl: Duration) async throws(StoreUnavailable) -> Bool
    /// Deletes the key only if its value is still `expected`; whether it did.
    func deleteIfEqual(_ key: String, expected: String) async throws(StoreUnavailable) -> Bool
    /// Sets the value and TTL unconditionally.
    func set(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable)
    /// The value and remaining TTL of a key, nil when absent.
    func read(_ key: String) async throws(StoreUnavailable) -> (value: String, ttl: Duration?)?
}

/// The store did not answer (down, or slower than its command timeout).
public struct StoreUnavailable: Error, Sendable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}

/// The settings of the `redis` resource (also taken by the in-memory stand-in).
public enum RedisSettings {
    public static let schema = SettingsSchema([
        SettingSpec("host", .string, default: .string("localhost"), "Redis host"),
        SettingSpec("port", .integer(1...65535), default: .integer(6379), "Redis port"),
        SettingSpec("password", .string, default: .string(""), secrecy: .secret, "AUTH password; empty for none"),
        SettingSpec("db", .integer(0...15), default: .integer(0), "database number (SELECT)"),
        SettingSpec("command_timeout", .duration, default: .duration(.milliseconds(250)), "a command slower than this counts as Redis unavailable"),
        SettingSpec("connect_timeout", .duration, default: .duration(.seconds(1)), "time limit of a connection attempt"),
        SettingSpec("pool_size", .integer(1...64), default: .integer(4), "connections, each on its own thread; concurrent commands are pipelined"),
    ])
}
