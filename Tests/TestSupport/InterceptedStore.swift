import PipelineKit

/// A key-value store that passes every call to `base`, with hooks a test sets on some of them:
/// after a read has found its value (to hold a read under way), before a member is added (to fail it).
public final class InterceptedStore: KeyValueStore {
    public typealias Hook = @Sendable (String) async throws(StoreUnavailable) -> Void
    private let base: any KeyValueStore
    private let afterRead: Hook?
    private let beforeAdd: Hook?

    public init(_ base: any KeyValueStore, afterRead: Hook? = nil, beforeAdd: Hook? = nil) {
        self.base = base
        self.afterRead = afterRead
        self.beforeAdd = beforeAdd
    }

    public func read(_ key: String) async throws(StoreUnavailable) -> (value: String, ttl: Duration?)? {
        let value = try await base.read(key)
        try await afterRead?(key)
        return value
    }

    public func addMembers(_ members: [String], to key: String) async throws(StoreUnavailable) -> Int {
        try await beforeAdd?(key)
        return try await base.addMembers(members, to: key)
    }

    public func set(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) { try await base.set(key, value, ttl: ttl) }
    public func setIfAbsent(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) -> Bool { try await base.setIfAbsent(key, value, ttl: ttl) }
    public func delete(_ key: String) async throws(StoreUnavailable) -> Bool { try await base.delete(key) }
    public func removeMembers(_ members: [String], from key: String) async throws(StoreUnavailable) -> Int { try await base.removeMembers(members, from: key) }
    public func holdsAny(of members: [String], ofEach keys: [String]) async throws(StoreUnavailable) -> [Bool] { try await base.holdsAny(of: members, ofEach: keys) }
    public func members(of key: String) async throws(StoreUnavailable) -> [String] { try await base.members(of: key) }
    public func keys(prefix: String) async throws(StoreUnavailable) -> [String] { try await base.keys(prefix: prefix) }
    public func health() async -> HealthStatus { await base.health() }
    public func shutdown() async {}
}
