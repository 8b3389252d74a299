import Foundation
import PipelineKit

/// The key-value capability in memory, with Redis's semantics (a set emptied is deleted).
extension MemoryStore: KeyValueStore {
    public func set(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) {
        try atomically { entries, now in entries[key] = Entry(value, ttl: ttl, now: now) }
    }

    public func setIfAbsent(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) -> Bool {
        try atomically { entries, now in
            guard entries[key] == nil else { return false }
            entries[key] = Entry(value, ttl: ttl, now: now)
            return true
        }
    }

    public func read(_ key: String) async throws(StoreUnavailable) -> (value: String, ttl: Duration?)? {
        try atomically { entries, now -> (value: String, ttl: Duration?)? in
            guard let entry = entries[key], entry.members == nil, entry.scores == nil else { return nil }
            return (entry.value, entry.expires.map { .seconds(Int64($0.timeIntervalSince(now).rounded(.down))) })
        }
    }

    public func delete(_ key: String) async throws(StoreUnavailable) -> Bool {
        try atomically { entries, _ in entries.removeValue(forKey: key) != nil }
    }

    public func addMembers(_ members: [String], to key: String) async throws(StoreUnavailable) -> Int {
        try atomically { entries, _ in
            var set = entries[key]?.members ?? []
            let before = set.count
            set.formUnion(members)
            if !set.isEmpty { entries[key] = Entry(members: set) }
            return set.count - before
        }
    }

    public func removeMembers(_ members: [String], from key: String) async throws(StoreUnavailable) -> Int {
        try atomically { entries, _ in
            guard var set = entries[key]?.members else { return 0 }
            let before = set.count
            set.subtract(members)
            entries[key] = set.isEmpty ? nil : Entry(members: set)
            return before - set.count
        }
    }

    public func holdsAny(of members: [String], ofEach keys: [String]) async throws(StoreUnavailable) -> [Bool] {
        try atomically { entries, _ in keys.map { key in members.contains { entries[key]?.members?.contains($0) ?? false } } }
    }

    public func members(of key: String) async throws(StoreUnavailable) -> [String] {
        try atomically { entries, _ in (entries[key]?.members ?? []).sorted() }
    }

    public func keys(prefix: String) async throws(StoreUnavailable) -> [String] {
        try atomically { entries, _ in entries.keys.filter { $0.hasPrefix(prefix) }.sorted() }
    }
}
