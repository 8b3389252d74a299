import Foundation
import PipelineKit
import RedisClient

/// Holds shared by every worker (`HoldStore`): one hash per group, `holds:{group}`, a field per
/// held key with `{count}:{until}:{held at}:{forget at}:{kind}` (epoch ms of the store's clock).
/// A field is forgotten twice its policy's longest hold after it ended (its escalation no longer
/// matters); the hash expires with its last field, and a hash of many fields drops forgotten ones.
extension RedisStore: HoldStore {
    /// KEYS[1] the group's hash; ARGV[1] the held key, ARGV[2] first length, ARGV[3] factor,
    /// ARGV[4] longest length (ms), ARGV[5] how long ago the failed request began (ms; -1: unknown),
    /// ARGV[6] the kind. Returns {count, ms until it ends}.
    static let holdScript = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local first, factor, cap, ago = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
        local count, ends, began = -1, 0, 0
        local stored = redis.call('HGET', KEYS[1], ARGV[1])
        if stored then
          local c, u, h, f = string.match(stored, '^(%d+):(%d+):(%d+):(%d+):')
          if c and tonumber(f) > now then count, ends, began = tonumber(c), tonumber(u), tonumber(h) end
        end
        if count >= 0 and (ends > now or (ago >= 0 and now - ago <= began)) then
          return {count, ends - now}
        end
        count = count + 1
        local length = first
        for i = 1, count do if length < cap then length = length * factor end end
        length = math.min(length, cap)
        local forget = now + length + 2 * cap
        redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:%.0f:%.0f:%.0f:%s', count, now + length, now, forget, ARGV[6]))
        if redis.call('PTTL', KEYS[1]) < forget - now then redis.call('PEXPIRE', KEYS[1], forget - now) end
        if redis.call('HLEN', KEYS[1]) > 256 then
          local all = redis.call('HGETALL', KEYS[1])
          for i = 1, #all, 2 do
            local f = string.match(all[i + 1], '^%d+:%d+:%d+:(%d+):')
            if not f or tonumber(f) <= now then redis.call('HDEL', KEYS[1], all[i]) end
          end
        end
        return {count, length}
        """)

    /// KEYS[1] the group's hash; ARGV[1] since (store ms; -1: all). Returns {now, then key, kind,
    /// count, ms until it ends, for each hold not forgotten that began at or after since}.
    static let holdsScript = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
        local since = tonumber(ARGV[1])
        local found = {now}
        local all = redis.call('HGETALL', KEYS[1])
        for i = 1, #all, 2 do
          local c, u, h, f, kind = string.match(all[i + 1], '^(%d+):(%d+):(%d+):(%d+):(.*)$')
          if c and tonumber(f) > now and tonumber(h) >= since then
            found[#found + 1] = all[i]
            found[#found + 1] = kind
            found[#found + 1] = tonumber(c)
            found[#found + 1] = tonumber(u) - now
          end
        end
        return found
        """)

    static func holdsKey(_ group: String) -> String { "holds:\(group)" }

    public func hold(_ key: String, group: String, policy: EscalationPolicy, kind: WaitReason, startedAgo: Duration?) async throws(StoreUnavailable) -> SharedHold {
        let arguments = [key, String(policy.first.milliseconds), String(policy.factor), String(policy.cap.milliseconds),
                         String(startedAgo.map { max(0, $0.milliseconds) } ?? -1), kind.rawValue]
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.holdScript, keys: [Self.holdsKey(group)], arguments: arguments)
        }
        guard case .array(let parts) = reply, parts.count == 2, let count = parts[0].integer, let remaining = parts[1].integer else {
            throw StoreUnavailable("unexpected answer to the hold script: \(reply)")
        }
        return SharedHold(key: key, kind: kind, count: count, remaining: .milliseconds(remaining))
    }

    public func holds(group: String, since: Int64?) async throws(StoreUnavailable) -> HoldsRead {
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.holdsScript, keys: [Self.holdsKey(group)], arguments: [String(since ?? -1)])
        }
        guard case .array(let parts) = reply, let now = parts.first?.integer, parts.count % 4 == 1 else {
            throw StoreUnavailable("unexpected answer to the holds script: \(reply)")
        }
        var holds: [SharedHold] = []
        for start in stride(from: 1, to: parts.count, by: 4) {
            guard let key = parts[start].string, let kind = parts[start + 1].string, let count = parts[start + 2].integer,
                  let remaining = parts[start + 3].integer else {
                throw StoreUnavailable("unexpected hold in the answer to the holds script: \(reply)")
            }
            holds.append(SharedHold(key: key, kind: WaitReason(rawValue: kind), count: count, remaining: .milliseconds(remaining)))
        }
        return HoldsRead(holds: holds, at: Int64(now))
    }

    public func clear(_ key: String, group: String) async throws(StoreUnavailable) {
        _ = try await perform { () async throws(RedisError) in
            try await client.checked(["HDEL", Self.holdsKey(group), key])
        }
    }
}

/// The in-memory twin, with the scripts' semantics.
extension MemoryStore: HoldStore {
    /// One field of a group's hash.
    private struct StoredHold {
        var count: Int
        var until: Int64
        var heldAt: Int64
        var forgetAt: Int64
        var kind: WaitReason

        init(count: Int, until: Int64, heldAt: Int64, forgetAt: Int64, kind: WaitReason) {
            (self.count, self.until, self.heldAt, self.forgetAt, self.kind) = (count, until, heldAt, forgetAt, kind)
        }

        init?(_ text: String) {
            let parts = text.split(separator: ":", maxSplits: 4, omittingEmptySubsequences: false)
            guard parts.count == 5, let count = Int(parts[0]), let until = Int64(parts[1]), let heldAt = Int64(parts[2]),
                  let forgetAt = Int64(parts[3]) else { return nil }
            self.init(count: count, until: until, heldAt: heldAt, forgetAt: forgetAt, kind: WaitReason(rawValue: String(parts[4])))
        }

        var text: String { "\(count):\(until):\(heldAt):\(forgetAt):\(kind.rawValue)" }
    }

    public func hold(_ key: String, group: String, policy: EscalationPolicy, kind: WaitReason, startedAgo: Duration?) async throws(StoreUnavailable) -> SharedHold {
        try atomically { entries, date in
            let now = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
            let hashKey = RedisStore.holdsKey(group)
            var fields = entries[hashKey]?.fields ?? [:]
            let stored = fields[key].flatMap(StoredHold.init).flatMap { $0.forgetAt > now ? $0 : nil }
            if let stored, stored.until > now || startedAgo.map({ now - $0.milliseconds <= stored.heldAt }) == true {
                return SharedHold(key: key, kind: kind, count: stored.count, remaining: .milliseconds(stored.until - now))
            }
            let count = stored.map { $0.count + 1 } ?? 0
            let length = policy.length(count).milliseconds
            let forgetAt = now + length + 2 * policy.cap.milliseconds
            fields[key] = StoredHold(count: count, until: now + length, heldAt: now, forgetAt: forgetAt, kind: kind).text
            let expires = max(entries[hashKey]?.expires ?? date, Date(timeIntervalSince1970: Double(forgetAt) / 1000))
            entries[hashKey] = Entry(fields: fields.filter { StoredHold($0.value).map { $0.forgetAt > now } ?? false }, expires: expires)
            return SharedHold(key: key, kind: kind, count: count, remaining: .milliseconds(length))
        }
    }

    public func holds(group: String, since: Int64?) async throws(StoreUnavailable) -> HoldsRead {
        try atomically { entries, date in
            let now = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
            let holds = (entries[RedisStore.holdsKey(group)]?.fields ?? [:]).compactMap { key, text -> SharedHold? in
                guard let stored = StoredHold(text), stored.forgetAt > now, stored.heldAt >= since ?? -1 else { return nil }
                return SharedHold(key: key, kind: stored.kind, count: stored.count, remaining: .milliseconds(stored.until - now))
            }
            return HoldsRead(holds: holds.sorted { $0.key < $1.key }, at: now)
        }
    }

    public func clear(_ key: String, group: String) async throws(StoreUnavailable) {
        try atomically { entries, _ in
            let hashKey = RedisStore.holdsKey(group)
            guard var entry = entries[hashKey], entry.fields?.removeValue(forKey: key) != nil else { return }
            entries[hashKey] = entry.fields?.isEmpty == true ? nil : entry
        }
    }
}
