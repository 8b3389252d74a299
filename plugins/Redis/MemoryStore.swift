import Foundation
import PipelineKit
import Synchronization

/// An in-memory stand-in for the `redis` resource with Redis's semantics (TTLs against an
/// injectable clock), for `outbound-worker test` and unit tests. It can be told to act down.
/// It has the key-value capability (`KeyValueStore`); plugins with scripts of their own add the
/// same capabilities to it as to `RedisStore`, written against `atomically`.
public final class MemoryStore: Resource {
    /// One key's value and when it expires: a string, a set's members, a sorted set's scores or a hash's fields
    /// (then `value` is empty).
    public struct Entry: Sendable {
        public var value: String
        public var expires: Date?
        /// The members when the key holds a set.
        public var members: Set<String>?
        /// The members and their scores when the key holds a sorted set.
        public var scores: [String: Double]?
        /// The fields and their values when the key holds a hash.
        public var fields: [String: String]?

        public init(value: String, expires: Date?) {
            self.value = value
            self.expires = expires
        }

        /// A set that does not expire.
        public init(members: Set<String>) {
            self.init(value: "", expires: nil)
            self.members = members
        }

        /// A sorted set that does not expire.
        public init(scores: [String: Double]) {
            self.init(value: "", expires: nil)
            self.scores = scores
        }

        /// A hash that expires at `expires`.
        public init(fields: [String: String], expires: Date?) {
            self.init(value: "", expires: expires)
            self.fields = fields
        }
    }

    public let clock: any WallClock
    private let entries = Mutex<[String: Entry]>([:])
    private let down = Mutex(false)

    public init(clock: any WallClock) {
        self.clock = clock
    }

    /// Makes every operation fail as if the server were down (or brings it back).
    public func setAvailable(_ available: Bool) {
        down.withLock { $0 = !available }
    }

    /// Runs `body` on the live entries (expired ones removed) as one atomic step, like a Lua script.
    public func atomically<T>(_ body: (inout [String: Entry], Date) -> T) throws(StoreUnavailable) -> T {
        if down.withLock({ $0 }) { throw StoreUnavailable("redis unavailable (simulated)") }
        let now = clock.now()
        return entries.withLock { entries in
            entries = entries.filter { $0.value.expires.map { $0 > now } ?? true }
            return body(&entries, now)
        }
    }

    public func health() async -> HealthStatus {
        down.withLock { $0 } ? .down("in-memory store set down") : .up
    }

    public func shutdown() async {}
}

extension MemoryStore.Entry {
    /// An entry that lives `ttl` from `now`.
    public init(_ value: String, ttl: Duration, now: Date) {
        self.init(value: value, expires: now.addingTimeInterval(ttl.secondsDouble))
    }
}
