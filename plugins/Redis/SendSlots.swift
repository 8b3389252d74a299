import Foundation
import PipelineKit
import RedisClient

/// Send slots shared by every worker (`SlotStore`): a GCRA in one Lua script, judged by Redis's clock.
extension RedisStore: SlotStore {
    /// KEYS[1] the pacer's key; ARGV[1] the interval in microseconds; ARGV[2] how many slots.
    /// Returns how many microseconds from Redis's now the first slot is.
    static let takeSlotsScript = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
        if tat < now then tat = now end
        local after = tat + interval * tonumber(ARGV[2])
        redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.ceil((after - now) / 1000) + 1000)
        return math.floor(tat - now)
        """)

    public func takeSlots(key: String, interval: Duration, count: Int) async throws -> Duration {
        let microseconds = max(1, interval.components.seconds * 1_000_000 + interval.components.attoseconds / 1_000_000_000_000)
        let first = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.takeSlotsScript, keys: [key], arguments: [String(microseconds), String(count)]).integer ?? 0
        }
        return .microseconds(first)
    }
}

extension MemoryStore: SlotStore {
    public func takeSlots(key: String, interval: Duration, count: Int) async throws -> Duration {
        try atomically { entries, now in
            let tat = max(entries[key].flatMap { Double($0.value) }.map { Date(timeIntervalSince1970: $0) } ?? now, now)
            let after = tat.addingTimeInterval(interval.secondsDouble * Double(count))
            entries[key] = Entry(value: String(after.timeIntervalSince1970), expires: after.addingTimeInterval(1))
            return .nanoseconds(Int64(tat.timeIntervalSince(now) * 1e9))
        }
    }
}
