import Foundation
import PipelineKit
import Synchronization

/// An in-memory store with Redis's semantics (TTLs against an injectable clock),
/// for `outbound-worker test` and unit tests. It can be told to act down.
public final class MemoryIdempotencyStore: IdempotencyStore {
    private struct Entry {
        var value: String
        var expires: Date
    }

    private let clock: any WallClock
    private let entries = Mutex<[String: Entry]>([:])
    private let down = Mutex(false)

    public init(clock: any WallClock) {
        self.clock = clock
    }

    /// Makes every operation fail as if the server were down (or brings it back).
    public func setAvailable(_ available: Bool) {
        down.withLock { $0 = !available }
    }

    public func setIfAbsent(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) -> String? {
        try checkAvailable()
        let now = clock.now()
        return entries.withLock { entries in
            if let entry = entries[key], entry.expires > now { return entry.value }
            entries[key] = Entry(value: value, expires: now.addingTimeInterval(ttl.secondsDouble))
            return nil
        }
    }

    public func compareAndSet(_ key: String, expected: String, new: String, ttl: Duration) async throws(StoreUnavailable) -> Bool {
        try checkAvailable()
        let now = clock.now()
        return entries.withLock { entries in
            guard let entry = entries[key], entry.expires > now, entry.value == expected else { return false }
            entries[key] = Entry(value: new, expires: now.addingTimeInterval(ttl.secondsDouble))
            return true
        }
    }

    public func deleteIfEqual(_ key: String, expected: String) async throws(StoreUnavailable) -> Bool {
        try checkAvailable()
        let now = clock.now()
        return entries.withLock { entries in
            guard let entry = entries[key], entry.expires > now, entry.value == expected else { return false }
            entries[key] = nil
            return true
        }
    }

    public func set(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) {
        try checkAvailable()
        let now = clock.now()
        entries.withLock { $0[key] = Entry(value: value, expires: now.addingTimeInterval(ttl.secondsDouble)) }
    }

    public func read(_ key: String) async throws(StoreUnavailable) -> (value: String, ttl: Duration?)? {
        try checkAvailable()
        let now = clock.now()
        return entries.withLock { entries -> (value: String, ttl: Duration?)? in
            guard let entry = entries[key], entry.expires > now else { return nil }
            return (entry.value, .seconds(Int64(entry.expires.timeIntervalSince(now).rounded(.down))))
        }
    }

    public func health() async -> HealthStatus {
        down.withLock { $0 } ? .down("in-memory store set down") : .up
    }

    public func shutdown() async {}

    private func checkAvailable() throws(StoreUnavailable) {
        if down.withLock({ $0 }) { throw StoreUnavailable("redis unavailable (simulated)") }
    }
}
