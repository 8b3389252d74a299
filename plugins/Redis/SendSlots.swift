import Foundation
import PipelineKit
import RedisClient

/// Send slots shared by every worker (`SlotStore`): a GCRA in one Lua script, judged by Redis's clock.
/// No grant reaches beyond now + horizon + interval: a slot time stored further ahead was written by
/// a clock ahead of this one (Redis's own stepped back, a promoted replica behind) and is read as
/// that bound — trusted as read, it stalled every worker for the difference.
extension RedisStore: SlotStore {
    /// KEYS[1] the pacer's key; ARGV[1] the interval (fractional: whole microseconds would space
    /// the slots up to 5 % closer than the pacer does at 100,000/s), ARGV[3] the horizon, in
    /// microseconds; ARGV[2] how many slots at most, ARGV[4] how many more if no slot of the key is
    /// reserved beyond Redis's now. Returns {microseconds from Redis's now to the first slot, slots
    /// reserved}, or {microseconds until one fits the horizon, 0}.
    static let takeSlotsScript = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local horizon = tonumber(ARGV[3])
        local wanted = tonumber(ARGV[2])
        local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
        if tat > now + horizon + interval then tat = now + horizon + interval end
        if tat <= now then
          tat = now
          wanted = wanted + (tonumber(ARGV[4] or '0') or 0)
        end
        local room = now + horizon - tat
        if room < 0 then return {math.floor(-room), 0} end
        local count = math.min(wanted, math.floor(room / interval) + 1)
        local after = tat + interval * count
        redis.call('SET', KEYS[1], string.format('%.0f', after), 'PX', math.ceil((after - now) / 1000) + 1000)
        return {math.floor(tat - now), count}
        """)

    public func takeSlots(key: String, interval: Duration, count: Int, spare: Int, within horizon: Duration) async throws -> SlotGrant {
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.takeSlotsScript, keys: [key], arguments: [String(interval.microseconds), String(count), String(horizon.wholeMicroseconds),
                                                                                   String(spare)])
        }
        guard case .array(let parts) = reply, parts.count == 2, let first = parts[0].integer, let granted = parts[1].integer else {
            throw RedisError.server("unexpected answer to the send-slot script: \(reply)")
        }
        return SlotGrant(first: .microseconds(first), count: granted)
    }
}

extension MemoryStore: SlotStore {
    public func takeSlots(key: String, interval: Duration, count: Int, spare: Int, within horizon: Duration) async throws -> SlotGrant {
        try atomically { entries, now in
            let farthest = now.addingTimeInterval(horizon.secondsDouble + interval.secondsDouble)
            let stored = min(entries[key].flatMap { Double($0.value) }.map { Date(timeIntervalSince1970: $0) } ?? now, farthest)
            let (tat, wanted) = stored <= now ? (now, count + spare) : (stored, count)
            let room = now.addingTimeInterval(horizon.secondsDouble).timeIntervalSince(tat)
            if room < -1e-6 { return SlotGrant(first: .nanoseconds(Int64(-room * 1e9)), count: 0) }
            let granted = min(wanted, Int(max(0, room) / interval.secondsDouble) + 1)
            let after = tat.addingTimeInterval(interval.secondsDouble * Double(granted))
            entries[key] = Entry(value: String(after.timeIntervalSince1970), expires: after.addingTimeInterval(1))
            return SlotGrant(first: .nanoseconds(Int64(tat.timeIntervalSince(now) * 1e9)), count: granted)
        }
    }
}

extension Duration {
    /// Whole microseconds, at least 1.
    fileprivate var wholeMicroseconds: Int64 {
        max(1, components.seconds * 1_000_000 + components.attoseconds / 1_000_000_000_000)
    }

    /// Microseconds, with their fraction, at least 1.
    fileprivate var microseconds: Double {
        max(1, Double(components.seconds) * 1e6 + Double(components.attoseconds) / 1e12)
    }
}
