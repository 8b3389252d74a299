import Foundation
import PipelineKit
import RedisPlugin

/// Idempotency keys in memory, with the Redis scripts' semantics and the store's clock.
extension MemoryStore: IdempotencyStore {
    public func claim(_ key: String, owner: String, ttl: Duration, lease: Duration, takeOverOwn: Bool) async throws(StoreUnavailable) -> ClaimResult {
        try atomically { entries, now in
            let value = KeyState.processing(owner: owner, since: now).encoded()
            guard let existing = entries[key]?.value else {
                entries[key] = Entry(value, ttl: ttl, now: now)
                return .claimed(value: value)
            }
            if let state = KeyState.decode(existing) {
                if state.isCompleted { return .completed(existing: existing) }
                let orphan = takeOverOwn && state.owner == owner
                if !orphan, let since = state.sinceDate, now.timeIntervalSince(since) < lease.secondsDouble { return .inFlight(existing: existing) }
            }
            entries[key] = Entry(value, ttl: ttl, now: now)
            return .tookOver(value: value, previous: existing)
        }
    }

    public func complete(_ key: String, claim: String?, value: String, ttl: Duration, receipt: (key: String, value: String)?) async throws(StoreUnavailable) -> CompletionResult {
        try atomically { entries, now in
            let current = entries[key]?.value
            entries[key] = Entry(value, ttl: ttl, now: now)
            if let receipt { entries[receipt.key] = Entry(receipt.value, ttl: ttl, now: now) }
            return claim == nil || current == claim ? .asClaimed : .claimLost(current: current)
        }
    }

    public func release(_ key: String, claim: String) async throws(StoreUnavailable) -> Bool {
        try atomically { entries, _ in
            guard entries[key]?.value == claim else { return false }
            entries[key] = nil
            return true
        }
    }

    public func set(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) {
        try atomically { entries, now in entries[key] = Entry(value, ttl: ttl, now: now) }
    }

    public func read(_ key: String) async throws(StoreUnavailable) -> (value: String, ttl: Duration?)? {
        try atomically { entries, now -> (value: String, ttl: Duration?)? in
            guard let entry = entries[key] else { return nil }
            return (entry.value, entry.expires.map { .seconds(Int64($0.timeIntervalSince(now).rounded(.down))) })
        }
    }
}
