/// The general key-value capability, a resource kind like `SlotStore`: the `redis` resource and
/// its in-memory twin (`MemoryStore`) provide it, so a Redis-backed feature written against it
/// runs on Redis in production and in memory under `outbound-worker test`, in any plugin,
/// without a store protocol of its own.
///
/// ```swift
/// let store = try context.resources.get(context.settings[MySettings.store], as: (any KeyValueStore).self)
/// try await store.addMembers(["+5511987654321"], to: "optout:all")
/// if try await store.isMember("+5511987654321", of: "optout:all") { … }
/// ```
///
/// Every call is one round trip (atomic on its key); a store that is down or slower than its
/// `command_timeout` throws `StoreUnavailable`, and the step's `degradation` policy decides.
public protocol KeyValueStore: Resource {
    /// Sets a string value that expires after `ttl` (`SET key value EX ttl`).
    func set(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable)
    /// Sets a string value that expires after `ttl` only if `key` does not exist (`SET key value NX EX ttl`); whether it did.
    func setIfAbsent(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) -> Bool
    /// The value and remaining TTL of a string key, nil when absent.
    func read(_ key: String) async throws(StoreUnavailable) -> (value: String, ttl: Duration?)?
    /// Removes `key` (`DEL`); whether it existed.
    @discardableResult
    func delete(_ key: String) async throws(StoreUnavailable) -> Bool
    /// Adds members to the set at `key` (created without expiry); returns how many were new.
    @discardableResult
    func addMembers(_ members: [String], to key: String) async throws(StoreUnavailable) -> Int
    /// Removes members from the set at `key`; returns how many were in it.
    @discardableResult
    func removeMembers(_ members: [String], from key: String) async throws(StoreUnavailable) -> Int
    /// For each key, whether its set holds any of `members` (one round trip however many keys and members).
    func holdsAny(of members: [String], ofEach keys: [String]) async throws(StoreUnavailable) -> [Bool]
    /// Every member of the set at `key`, sorted (read in pages: no long blocking call).
    func members(of key: String) async throws(StoreUnavailable) -> [String]
    /// Every key that starts with `prefix`, sorted (read in pages: no long blocking call; for operator tools, not per message).
    func keys(prefix: String) async throws(StoreUnavailable) -> [String]
}

extension KeyValueStore {
    /// For each key, whether its set holds `member`.
    public func isMember(_ member: String, ofEach keys: [String]) async throws(StoreUnavailable) -> [Bool] {
        try await holdsAny(of: [member], ofEach: keys)
    }

    /// Whether the set at `key` holds `member`.
    public func isMember(_ member: String, of key: String) async throws(StoreUnavailable) -> Bool {
        try await isMember(member, ofEach: [key]).first ?? false
    }
}
