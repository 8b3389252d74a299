import Foundation
import PipelineKit
import RedisClient
import RedisPlugin

/// The messaging limit's window in Redis: one sorted set per portfolio, one script per operation,
/// judged by Redis's clock so every worker counts the same window.
extension RedisStore: MessagingLimitStore {
    /// KEYS[1] the portfolio's set; ARGV[1] recipient, ARGV[2] limit, ARGV[3] window (ms).
    /// Returns {0, now} taken, {1, 0} counted already, {2, ms} full until then.
    static let takeScript = RedisScript(LuaClock.functions + "\n" + """
        local now = now_ms()
        local window = tonumber(ARGV[3])
        redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
        if redis.call('ZSCORE', KEYS[1], ARGV[1]) then
          redis.call('ZADD', KEYS[1], now, ARGV[1])
          redis.call('PEXPIRE', KEYS[1], window)
          return {1, 0}
        end
        if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
          local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
          return {2, (tonumber(oldest[2]) or now) + window}
        end
        redis.call('ZADD', KEYS[1], now, ARGV[1])
        redis.call('PEXPIRE', KEYS[1], window)
        return {0, now}
        """)

    /// `takeScript` without a write: KEYS[1] the portfolio's set; ARGV[1] recipient, ARGV[2] limit,
    /// ARGV[3] window (ms). Returns {0, 0} room, {1, 0} counted, {2, ms} full until then.
    static let lookScript = RedisScript(LuaClock.functions + "\n" + """
        local now = now_ms()
        local since = now - tonumber(ARGV[3])
        local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if score and tonumber(score) > since then return {1, 0} end
        if redis.call('ZCOUNT', KEYS[1], '(' .. since, '+inf') < tonumber(ARGV[2]) then return {0, 0} end
        local oldest = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. since, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
        return {2, (tonumber(oldest[2]) or now) + tonumber(ARGV[3])}
        """)

    /// KEYS[1] the set; ARGV[1] recipient, ARGV[2] the time its unit was taken.
    static let giveBackScript = RedisScript("""
        local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
        if score and tonumber(score) == tonumber(ARGV[2]) then redis.call('ZREM', KEYS[1], ARGV[1]) end
        return 0
        """)

    public func take(_ key: String, recipient: String, limit: Int, window: Duration) async throws(StoreUnavailable) -> MessagingLimitTake {
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.takeScript, keys: [key], arguments: [recipient, String(limit), String(window.milliseconds)])
        }
        let (kind, value) = try Self.kindAndValue(of: reply)
        switch kind {
        case 0: return .taken(at: Int64(value))
        case 1: return .counted
        default: return .full(until: Date(epochMilliseconds: Double(value)))
        }
    }

    public func look(_ key: String, recipient: String, limit: Int, window: Duration) async throws(StoreUnavailable) -> MessagingLimitLook {
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.lookScript, keys: [key], arguments: [recipient, String(limit), String(window.milliseconds)])
        }
        switch try Self.kindAndValue(of: reply) {
        case (0, _): return .room
        case (1, _): return .counted
        case (_, let value): return .full(until: Date(epochMilliseconds: Double(value)))
        }
    }

    /// The `{kind, value}` both messaging-limit scripts answer.
    private static func kindAndValue(of reply: RedisReply) throws(StoreUnavailable) -> (Int, Int) {
        guard case .array(let parts) = reply, parts.count == 2, case .integer(let kind) = parts[0], case .integer(let value) = parts[1] else {
            throw StoreUnavailable("unexpected answer to a messaging-limit script: \(reply)")
        }
        return (kind, value)
    }

    public func giveBack(_ key: String, recipient: String, takenAt at: Int64) async throws(StoreUnavailable) {
        _ = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.giveBackScript, keys: [key], arguments: [recipient, String(at)])
        }
    }

    public func counted(_ key: String, window: Duration) async throws(StoreUnavailable) -> Int {
        try await perform { () async throws(RedisError) in
            let time = try await client.checked(["TIME"])
            guard case .array(let parts) = time, let seconds = parts.first?.string.flatMap(Int64.init) else { return 0 }
            return try await client.checked(["ZCOUNT", key, String(seconds * 1000 - window.milliseconds + 1), "+inf"]).integer ?? 0
        }
    }
}
