import Foundation
import PipelineKit
import RedisClient

/// Holds shared by every worker (`HoldStore`): one hash per group, `holds:{group}`, a field per
/// held key with `{count}:{until}:{began}:{forget}:{seq}:{kind}` (epoch ms of the store's clock;
/// `seq` from the hash's `~seq` counter, in the hash's `~epoch`: when it was begun), and one hash
/// `holds:changes` naming each group's last write (`{seq}:{ms}:{keep ms}`). A field is forgotten
/// twice its policy's longest hold after it ended (its escalation no longer matters); a hash
/// expires with its last field, and a hash of many fields drops forgotten ones. The group's write
/// and its change are two keys, written one by one (they may live on two masters of a Redis
/// Cluster): the hold first, so a change read means a hold written.
extension RedisStore: HoldStore {
    /// KEYS[1] the group's hash; ARGV[1] the held key, ARGV[2] first length, ARGV[3] factor,
    /// ARGV[4] longest length (ms), ARGV[5] how long ago the failed request began (ms; -1: unknown),
    /// ARGV[6] the kind. Returns {count, ms until it ends, seq of the write (0: none), now, ms the hash lives}.
    static let holdScript = RedisScript(LuaClock.functions + "\n" + """
        local now = now_ms()
        local first, factor, cap, ago = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
        local count, ends, began = -1, 0, 0
        local stored = redis.call('HGET', KEYS[1], ARGV[1])
        if stored then
          local c, u, h, f = string.match(stored, '^(%d+):(%d+):(%d+):(%d+):')
          if c and tonumber(f) > now then count, ends, began = tonumber(c), tonumber(u), tonumber(h) end
        end
        if count >= 0 and (ends > now or (ago >= 0 and now - ago <= began)) then
          return {count, ends - now, 0, now, 0}
        end
        count = count + 1
        local length = first
        for i = 1, count do if length < cap then length = length * factor end end
        length = math.min(length, cap)
        local forget = now + length + 2 * cap
        redis.call('HSETNX', KEYS[1], '~epoch', now)
        local seq = redis.call('HINCRBY', KEYS[1], '~seq', 1)
        redis.call('HSET', KEYS[1], ARGV[1], string.format('%d:%.0f:%.0f:%.0f:%d:%s', count, now + length, now, forget, seq, ARGV[6]))
        if redis.call('PTTL', KEYS[1]) < forget - now then redis.call('PEXPIRE', KEYS[1], forget - now) end
        if redis.call('HLEN', KEYS[1]) > 256 then
          local all = redis.call('HGETALL', KEYS[1])
          for i = 1, #all, 2 do
            local f = string.match(all[i + 1], '^%d+:%d+:%d+:(%d+):')
            if string.sub(all[i], 1, 1) ~= '~' and (not f or tonumber(f) <= now) then redis.call('HDEL', KEYS[1], all[i]) end
          end
        end
        return {count, length, seq, now, redis.call('PTTL', KEYS[1])}
        """)

    /// KEYS[1] `holds:changes`; ARGV[1] the group, ARGV[2] its change `{seq}:{ms}:{keep}`, ARGV[3]
    /// keep (ms: as long as the group's hash lives), made to reach as far as the change it replaces
    /// (announces may land out of order). A map of many groups drops those whose hash has expired.
    static let announceScript = RedisScript(LuaClock.functions + "\n" + """
        local seq, ms, keep = string.match(ARGV[2], '^(%d+):(%d+):(%d+)$')
        local old = redis.call('HGET', KEYS[1], ARGV[1])
        if seq and old then
          local oldMs, oldKeep = string.match(old, '^%d+:(%d+):(%d+)$')
          if oldMs and tonumber(oldMs) + tonumber(oldKeep) > tonumber(ms) + tonumber(keep) then
            ARGV[2] = string.format('%s:%s:%.0f', seq, ms, tonumber(oldMs) + tonumber(oldKeep) - tonumber(ms))
          end
        end
        redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
        if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[1], ARGV[3]) end
        if redis.call('HLEN', KEYS[1]) > 64 then
          local now = now_ms()
          local all = redis.call('HGETALL', KEYS[1])
          for i = 1, #all, 2 do
            local ms, keep = string.match(all[i + 1], '^%d+:(%d+):(%d+)$')
            if ms and tonumber(ms) + tonumber(keep) <= now then redis.call('HDEL', KEYS[1], all[i]) end
          end
        end
        return 0
        """)

    /// KEYS[1] the group's hash; ARGV[1] the epoch and ARGV[2] the seq of the last read (-1: none).
    /// Returns {seq now, epoch, then key, kind, count, ms until it ends, for each hold not
    /// forgotten written after it}. A hash begun again since (it expired) is read whole.
    static let holdsScript = RedisScript(LuaClock.functions + "\n" + """
        local now = now_ms()
        local current = tonumber(redis.call('HGET', KEYS[1], '~seq') or '0')
        local epoch = tonumber(redis.call('HGET', KEYS[1], '~epoch') or '0')
        local since = tonumber(ARGV[2])
        if epoch ~= tonumber(ARGV[1]) then since = -1 end
        local found = {current, epoch}
        local all = redis.call('HGETALL', KEYS[1])
        for i = 1, #all, 2 do
          local c, u, f, s, kind = string.match(all[i + 1], '^(%d+):(%d+):%d+:(%d+):(%d+):(.*)$')
          if c and tonumber(f) > now and tonumber(s) > since then
            found[#found + 1] = all[i]
            found[#found + 1] = kind
            found[#found + 1] = tonumber(c)
            found[#found + 1] = tonumber(u) - now
          end
        end
        return found
        """)

    /// KEYS[1] the group's hash; ARGV[1] the held key, ARGV[2] how long ago the successful request
    /// began (ms; -1: unknown). Returns 0 when the hold stands (it began after the request), else 1.
    static let clearScript = RedisScript(LuaClock.functions + "\n" + """
        local stored = redis.call('HGET', KEYS[1], ARGV[1])
        if not stored then return 1 end
        local ago = tonumber(ARGV[2])
        if ago >= 0 then
          local now = now_ms()
          local began = tonumber(string.match(stored, '^%d+:%d+:(%d+):') or '0')
          if began > now - ago then return 0 end
        end
        redis.call('HDEL', KEYS[1], ARGV[1])
        return 1
        """)

    static func holdsKey(_ group: String) -> String { "holds:\(group)" }
    static let changesKey = "holds:changes"

    public func hold(_ key: String, group: String, policy: EscalationPolicy, kind: WaitReason, startedAgo: Duration?) async throws(StoreUnavailable) -> SharedHold {
        let arguments = [key, String(policy.first.milliseconds), String(policy.factor), String(policy.cap.milliseconds), Self.ago(startedAgo), kind.rawValue]
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.holdScript, keys: [Self.holdsKey(group)], arguments: arguments)
        }
        guard case .array(let parts) = reply, parts.count == 5, let count = parts[0].integer, let remaining = parts[1].integer,
              let seq = parts[2].integer, let now = parts[3].integer, let lives = parts[4].integer else {
            throw StoreUnavailable("unexpected answer to the hold script: \(reply)")
        }
        let change = seq > 0 ? Self.change(seq: Int64(seq), at: Int64(now), keep: Int64(lives)) : nil
        return SharedHold(key: key, kind: kind, count: count, remaining: .milliseconds(remaining), change: change)
    }

    /// A group's change: `{seq}:{ms}:{keep ms}`.
    static func change(seq: Int64, at now: Int64, keep: Int64) -> String { "\(seq):\(now):\(keep)" }

    public func announce(group: String, change: String) async throws(StoreUnavailable) {
        let keep = change.split(separator: ":").last.map(String.init) ?? "0"
        _ = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.announceScript, keys: [Self.changesKey], arguments: [group, change, keep])
        }
    }

    public func changes() async throws(StoreUnavailable) -> [String: String] {
        let reply = try await perform { () async throws(RedisError) in
            try await client.checked(["HGETALL", Self.changesKey])
        }
        guard case .array(let parts) = reply, parts.count % 2 == 0 else { throw StoreUnavailable("unexpected answer to HGETALL \(Self.changesKey): \(reply)") }
        var changes: [String: String] = [:]
        for start in stride(from: 0, to: parts.count, by: 2) {
            if let group = parts[start].string, let token = parts[start + 1].string { changes[group] = token }
        }
        return changes
    }

    public func holds(group: String, since: HoldsRead?) async throws(StoreUnavailable) -> HoldsRead {
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.holdsScript, keys: [Self.holdsKey(group)], arguments: [String(since?.epoch ?? -1), String(since?.at ?? -1)])
        }
        guard case .array(let parts) = reply, parts.count % 4 == 2, let current = parts[0].integer, let epoch = parts[1].integer else {
            throw StoreUnavailable("unexpected answer to the holds script: \(reply)")
        }
        var holds: [SharedHold] = []
        for start in stride(from: 2, to: parts.count, by: 4) {
            guard let key = parts[start].string, let kind = parts[start + 1].string, let count = parts[start + 2].integer,
                  let remaining = parts[start + 3].integer else {
                throw StoreUnavailable("unexpected hold in the answer to the holds script: \(reply)")
            }
            holds.append(SharedHold(key: key, kind: WaitReason(rawValue: kind), count: count, remaining: .milliseconds(remaining)))
        }
        return HoldsRead(holds: holds, at: Int64(current), epoch: Int64(epoch))
    }

    @discardableResult
    public func clear(_ key: String, group: String, startedAgo: Duration?) async throws(StoreUnavailable) -> Bool {
        try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.clearScript, keys: [Self.holdsKey(group)], arguments: [key, Self.ago(startedAgo)]).integer == 1
        }
    }

    private static func ago(_ duration: Duration?) -> String {
        String(duration.map { max(0, $0.milliseconds) } ?? -1)
    }
}

/// The in-memory twin, with the scripts' semantics.
extension MemoryStore: HoldStore {
    /// One field of a group's hash.
    private struct StoredHold {
        var count: Int
        var until: Int64
        var began: Int64
        var forgetAt: Int64
        var seq: Int64
        var kind: WaitReason

        init(count: Int, until: Int64, began: Int64, forgetAt: Int64, seq: Int64, kind: WaitReason) {
            (self.count, self.until, self.began, self.forgetAt, self.seq, self.kind) = (count, until, began, forgetAt, seq, kind)
        }

        init?(_ text: String) {
            let parts = text.split(separator: ":", maxSplits: 5, omittingEmptySubsequences: false)
            guard parts.count == 6, let count = Int(parts[0]), let until = Int64(parts[1]), let began = Int64(parts[2]),
                  let forgetAt = Int64(parts[3]), let seq = Int64(parts[4]) else { return nil }
            self.init(count: count, until: until, began: began, forgetAt: forgetAt, seq: seq, kind: WaitReason(rawValue: String(parts[5])))
        }

        var text: String { "\(count):\(until):\(began):\(forgetAt):\(seq):\(kind.rawValue)" }
    }

    private static let seqField = "~seq"
    private static let epochField = "~epoch"

    public func hold(_ key: String, group: String, policy: EscalationPolicy, kind: WaitReason, startedAgo: Duration?) async throws(StoreUnavailable) -> SharedHold {
        try atomically { entries, date in
            let now = date.epochMilliseconds()
            let hashKey = RedisStore.holdsKey(group)
            var fields = entries[hashKey]?.fields ?? [:]
            let stored = fields[key].flatMap(StoredHold.init).flatMap { $0.forgetAt > now ? $0 : nil }
            if let stored, stored.until > now || startedAgo.map({ now - $0.milliseconds <= stored.began }) == true {
                return SharedHold(key: key, kind: kind, count: stored.count, remaining: .milliseconds(stored.until - now))
            }
            let count = stored.map { $0.count + 1 } ?? 0
            let length = policy.length(count).milliseconds
            let forgetAt = now + length + 2 * policy.cap.milliseconds
            let seq = (fields[Self.seqField].flatMap { Int64($0) } ?? 0) + 1
            fields = fields.filter { $0.key.hasPrefix("~") || StoredHold($0.value).map { $0.forgetAt > now } ?? false }
            fields[Self.seqField] = String(seq)
            if fields[Self.epochField] == nil { fields[Self.epochField] = String(now) }
            fields[key] = StoredHold(count: count, until: now + length, began: now, forgetAt: forgetAt, seq: seq, kind: kind).text
            let forgotten = Date(epochMilliseconds: Double(forgetAt))
            entries[hashKey] = Entry(fields: fields, expires: max(entries[hashKey]?.expires ?? forgotten, forgotten))
            let lives = Int64(((entries[hashKey]?.expires ?? forgotten).timeIntervalSince(date) * 1000).rounded(.up))
            return SharedHold(key: key, kind: kind, count: count, remaining: .milliseconds(length), change: RedisStore.change(seq: seq, at: now, keep: lives))
        }
    }

    public func announce(group: String, change: String) async throws(StoreUnavailable) {
        try atomically { entries, date in
            func parts(_ change: String) -> [Int64] { change.split(separator: ":").compactMap { Int64($0) } }
            var changes = entries[RedisStore.changesKey]?.fields ?? [:]
            var new = parts(change)
            // As far as the change it replaces reaches (announces may land out of order).
            if new.count == 3, let old = changes[group].map(parts), old.count == 3, old[1] + old[2] > new[1] + new[2] { new[2] = old[1] + old[2] - new[1] }
            let until = date.addingTimeInterval(Double(new.count == 3 ? new[2] : 0) / 1000)
            changes[group] = new.count == 3 ? new.map(String.init).joined(separator: ":") : change
            if changes.count > 64 {
                let now = date.epochMilliseconds()
                changes = changes.filter { parts($0.value).count != 3 || parts($0.value)[1] + parts($0.value)[2] > now }
            }
            entries[RedisStore.changesKey] = Entry(fields: changes, expires: max(entries[RedisStore.changesKey]?.expires ?? until, until))
        }
    }

    public func changes() async throws(StoreUnavailable) -> [String: String] {
        try atomically { entries, _ in entries[RedisStore.changesKey]?.fields ?? [:] }
    }

    public func holds(group: String, since: HoldsRead?) async throws(StoreUnavailable) -> HoldsRead {
        try atomically { entries, date in
            let now = date.epochMilliseconds()
            let fields = entries[RedisStore.holdsKey(group)]?.fields ?? [:]
            let current = fields[Self.seqField].flatMap { Int64($0) } ?? 0
            let epoch = fields[Self.epochField].flatMap { Int64($0) } ?? 0
            let after = since.flatMap { $0.epoch == epoch ? $0.at : nil } ?? -1
            let holds = fields.compactMap { key, text -> SharedHold? in
                guard let stored = StoredHold(text), stored.forgetAt > now, stored.seq > after else { return nil }
                return SharedHold(key: key, kind: stored.kind, count: stored.count, remaining: .milliseconds(stored.until - now))
            }
            return HoldsRead(holds: holds.sorted { $0.key < $1.key }, at: current, epoch: epoch)
        }
    }

    @discardableResult
    public func clear(_ key: String, group: String, startedAgo: Duration?) async throws(StoreUnavailable) -> Bool {
        try atomically { entries, date in
            let hashKey = RedisStore.holdsKey(group)
            guard var entry = entries[hashKey], let stored = entry.fields?[key] else { return true }
            if let startedAgo, let hold = StoredHold(stored), hold.began > date.epochMilliseconds() - startedAgo.milliseconds { return false }
            entry.fields?[key] = nil
            entries[hashKey] = entry
            return true
        }
    }
}
