import Foundation
import PipelineKit
import RedisPlugin

/// Idempotency keys in memory, with the Redis scripts' semantics and the store's clock.
extension MemoryStore: IdempotencyStore {
    public func claim(_ key: String, owner: String, ttl: Duration, lease: Duration, takeOverOwnAfter: Duration?, inDoubt: InDoubtPolicy, trace: String?) async throws(StoreUnavailable) -> ClaimResult {
        try atomically { entries, now in
            let value = KeyState.processing(owner: owner, since: now, trace: TraceHeaders.traceparent(trace)).encoded()
            guard let existing = entries[key]?.value else {
                entries[key] = Entry(value, ttl: ttl, now: now)
                return .claimed(value: value)
            }
            if let state = KeyState.decode(existing) {
                if state.isCompleted { return .completed(existing: existing) }
                if state.isInDoubt {
                    let elapsed = state.sinceDate.map { now.timeIntervalSince($0) } ?? inDoubt.window.secondsDouble
                    let remaining = inDoubt.window.secondsDouble - elapsed
                    if remaining > 0 { return .inDoubt(existing: existing, remaining: .milliseconds(Int64((remaining * 1000).rounded(.up)))) }
                    guard inDoubt.decision == .resend else { return .inDoubtExpired(existing: existing) }
                    entries[key]?.value = value
                    return .resending(value: value, previous: existing)
                }
                let age = state.sinceDate.map { now.timeIntervalSince($0) } ?? 0
                let orphan = takeOverOwnAfter.map { state.owner == owner && age >= $0.secondsDouble } ?? false
                if !orphan, let since = state.sinceDate, now.timeIntervalSince(since) < lease.secondsDouble { return .inFlight(existing: existing) }
            }
            entries[key] = Entry(value, ttl: ttl, now: now)
            return .tookOver(value: value, previous: existing)
        }
    }

    public func markInDoubt(_ key: String, claim: String, owner: String, attempt: Int, ttl: Duration, trace: String?) async throws(StoreUnavailable) -> InDoubtMark {
        try atomically { entries, now in
            let value = KeyState.inDoubt(owner: owner, since: now, attempt: attempt, trace: TraceHeaders.traceparent(trace)).encoded()
            guard let current = entries[key]?.value else {
                entries[key] = Entry(value, ttl: ttl, now: now)
                return .marked(value: value)
            }
            if current == claim {
                entries[key]?.value = value
                return .marked(value: value)
            }
            return KeyState.decode(current)?.isCompleted == true ? .completed(existing: current) : .other(current: current)
        }
    }

    public func complete(_ key: String, claim: String?, value: String, ttl: Duration, mapping: (wamid: String, send: MappedSend)?) async throws(StoreUnavailable) -> CompletionResult {
        try atomically { entries, now in
            let current = entries[key]?.value
            // Completed first by a delivery status (SPEC 13): this send's own when it names the same
            // wamid, or when this send knows none (the status's wamid then stays).
            let settled = current.flatMap(KeyState.decode).flatMap { $0.isCompleted ? $0 : nil }
            let wamid = mapping?.wamid
            if settled != nil, wamid == nil { return .asClaimed }
            entries[key] = Entry(value, ttl: ttl, now: now)
            if let mapping, !mapping.send.internalID.isEmpty { entries["wamid:\(mapping.wamid)"] = Entry(mapping.send.stored, ttl: ttl, now: now) }
            if claim == nil || current == claim { return .asClaimed }
            return settled?.wamid == wamid ? .asClaimed : .claimLost(current: current)
        }
    }

    public func releaseOrphan(_ key: String, owner: String, olderThan age: Duration) async throws(StoreUnavailable) -> OrphanRelease {
        try atomically { entries, now in
            guard let existing = entries[key]?.value, let state = KeyState.decode(existing), state.status == "processing", state.owner == owner,
                  let since = state.sinceDate else { return .notOrphaned }
            guard now.timeIntervalSince(since) >= age.secondsDouble else { return .tooYoung }
            entries[key] = nil
            return .released
        }
    }

    public func release(_ key: String, claim: String) async throws(StoreUnavailable) -> Bool {
        try atomically { entries, _ in
            guard entries[key]?.value == claim else { return false }
            entries[key] = nil
            return true
        }
    }
}
