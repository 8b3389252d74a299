import Foundation
import PipelineKit
import RedisClient
import RedisPlugin

/// Idempotency keys in Redis: one Lua script per operation, one round trip each.
extension RedisStore: IdempotencyStore {
    /// ISO 8601 from and to epoch milliseconds in Lua (Redis's Lua has no date library).
    static let isoFunctions = """
        local function iso(ms)
          local s = math.floor(ms / 1000)
          local days = math.floor(s / 86400)
          local rem = s - days * 86400
          local z = days + 719468
          local era = math.floor(z / 146097)
          local doe = z - era * 146097
          local yoe = math.floor((doe - math.floor(doe / 1460) + math.floor(doe / 36524) - math.floor(doe / 146096)) / 365)
          local doy = doe - (365 * yoe + math.floor(yoe / 4) - math.floor(yoe / 100))
          local mp = math.floor((5 * doy + 2) / 153)
          local d = doy - math.floor((153 * mp + 2) / 5) + 1
          local m = mp < 10 and mp + 3 or mp - 9
          local y = yoe + era * 400 + (m <= 2 and 1 or 0)
          return string.format('%04d-%02d-%02dT%02d:%02d:%02d.%03dZ', y, m, d, math.floor(rem / 3600), math.floor(rem % 3600 / 60), rem % 60, ms % 1000)
        end
        local function epoch(text)
          if type(text) ~= 'string' then return nil end
          local y, m, d, hh, mm, ss, frac = string.match(text, '^(%d%d%d%d)-(%d%d)-(%d%d)T(%d%d):(%d%d):(%d%d)%.?(%d*)Z$')
          if not y then return nil end
          y = tonumber(y); m = tonumber(m); d = tonumber(d)
          if m <= 2 then y = y - 1 end
          local era = math.floor(y / 400)
          local yoe = y - era * 400
          local doy = math.floor((153 * ((m + 9) % 12) + 2) / 5) + d - 1
          local doe = yoe * 365 + math.floor(yoe / 4) - math.floor(yoe / 100) + doy
          local days = era * 146097 + doe - 719468
          local ms = 0
          if frac ~= '' then ms = math.floor(tonumber('0.' .. frac) * 1000 + 0.5) end
          return (days * 86400 + tonumber(hh) * 3600 + tonumber(mm) * 60 + tonumber(ss)) * 1000 + ms
        end
        """

    /// KEYS[1] the key; ARGV[1] owner, ARGV[2] ttl (s), ARGV[3] lease (ms), ARGV[4] the age (ms) after
    /// which the owner's own processing value is taken over (a claim whose answer was lost; -1: never), ARGV[5] the in-doubt window
    /// (ms), ARGV[6] '1' to resend after it, ARGV[7] the send's traceparent ('' for none; written as the
    /// value's `trace`). The lease and the window are judged by Redis's clock.
    /// Returns {1, value} claimed, {2, existing} completed, {3, existing} in flight, {4, value, previous}
    /// taken over, {5, existing, remaining ms} in doubt, {6, value, previous} resending, {7, existing} in doubt past its window.
    static let claimScript = RedisScript(LuaClock.functions + "\n" + isoFunctions + "\n" + """
        local now = now_ms()
        local trace = ARGV[7] ~= '' and (',"trace":"' .. ARGV[7] .. '"') or ''
        local value = '{"status":"processing","owner":' .. cjson.encode(ARGV[1]) .. ',"since":"' .. iso(now) .. '"' .. trace .. '}'
        local existing = redis.call('GET', KEYS[1])
        if not existing then
          redis.call('SET', KEYS[1], value, 'EX', ARGV[2])
          return {1, value}
        end
        local ok, state = pcall(cjson.decode, existing)
        if ok and type(state) == 'table' then
          if state.status == 'completed' then return {2, existing} end
          local since = epoch(state.since)
          if state.status == 'in_doubt' then
            -- A since that cannot be read counts as long past (never a wait without end).
            local remaining = since and (tonumber(ARGV[5]) - (now - since)) or 0
            if remaining > 0 then return {5, existing, remaining} end
            if ARGV[6] ~= '1' then return {7, existing} end
            redis.call('SET', KEYS[1], value, 'KEEPTTL')
            return {6, value, existing}
          end
          local orphanAge = tonumber(ARGV[4])
          local orphan = orphanAge >= 0 and state.owner == ARGV[1] and since and now - since >= orphanAge
          if not orphan and since and now - since < tonumber(ARGV[3]) then return {3, existing} end
        end
        redis.call('SET', KEYS[1], value, 'EX', ARGV[2])
        return {4, value, existing}
        """)

    /// KEYS[1] the key; ARGV[1] the claim, ARGV[2] owner, ARGV[3] attempt, ARGV[4] ttl (s) when the key is gone,
    /// ARGV[5] the send's traceparent ('' for none).
    /// Returns {1, value} marked in doubt, {2, current} completed, {3, current} someone else's.
    static let markInDoubtScript = RedisScript(LuaClock.functions + "\n" + isoFunctions + "\n" + """
        local now = now_ms()
        local trace = ARGV[5] ~= '' and (',"trace":"' .. ARGV[5] .. '"') or ''
        local value = '{"status":"in_doubt","owner":' .. cjson.encode(ARGV[2]) .. ',"since":"' .. iso(now) .. '","attempt":' .. ARGV[3] .. trace .. '}'
        local current = redis.call('GET', KEYS[1])
        if not current then
          redis.call('SET', KEYS[1], value, 'EX', ARGV[4])
          return {1, value}
        end
        if current == ARGV[1] then
          redis.call('SET', KEYS[1], value, 'KEEPTTL')
          return {1, value}
        end
        if string.find(current, '"status":"completed"', 1, true) then return {2, current} end
        return {3, current}
        """)

    /// KEYS[1] the key, KEYS[2] the wamid mapping's bucket (optional); ARGV[1] the claim ('' for none), ARGV[2] the
    /// completed value, ARGV[3] ttl (s), ARGV[4] `"wamid":"…"` ('' for none), ARGV[5] the mapping's field, ARGV[6] the mapped send (`MappedSend.stored`).
    /// Returns {1} as claimed, {0, current} otherwise.
    /// A key a delivery status completed first (SPEC 13: the statuses pipeline settles keys still
    /// `processing`) is this send's own when it names the same wamid, or when this send knows none
    /// (ARGV[4] '': then the status's wamid stays).
    static let completeScript = RedisScript(WamidBuckets.luaFunctions + "\n" + """
        local current = redis.call('GET', KEYS[1])
        local settled = current and string.find(current, '"status":"completed"', 1, true)
        if settled and ARGV[4] == '' then return {1} end
        redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
        if KEYS[2] then
          local now = redis_now()
          mapping_put(KEYS[2], ARGV[5], ARGV[6], now + tonumber(ARGV[3]), now)
        end
        if ARGV[1] == '' or current == ARGV[1] then return {1} end
        if settled and string.find(current, ARGV[4], 1, true) then return {1} end
        return {0, current or ''}
        """)

    static let releaseScript = RedisScript("""
        if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
        return 0
        """)

    public func claim(_ key: String, owner: String, ttl: Duration, lease: Duration, takeOverOwnAfter: Duration?, inDoubt: InDoubtPolicy, trace: String?) async throws(StoreUnavailable) -> ClaimResult {
        let arguments = [owner, Self.seconds(ttl), String(max(1, lease.milliseconds)), takeOverOwnAfter.map { String(max(0, $0.milliseconds)) } ?? "-1",
                         String(max(0, inDoubt.window.milliseconds)), inDoubt.decision == .resend ? "1" : "0",
                         TraceHeaders.traceparent(trace) ?? ""]
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.claimScript, keys: [key], arguments: arguments)
        }
        guard case .array(let items) = reply, let kind = items.first?.integer, let value = items.dropFirst().first?.string else {
            throw StoreUnavailable("unexpected answer to the claim script: \(reply)")
        }
        switch kind {
        case 1: return .claimed(value: value)
        case 2: return .completed(existing: value)
        case 3: return .inFlight(existing: value)
        case 5: return .inDoubt(existing: value, remaining: .milliseconds(items.dropFirst(2).first?.integer ?? 0))
        case 6: return .resending(value: value, previous: items.dropFirst(2).first?.string ?? "")
        case 7: return .inDoubtExpired(existing: value)
        default: return .tookOver(value: value, previous: items.dropFirst(2).first?.string ?? "")
        }
    }

    public func markInDoubt(_ key: String, claim: String, owner: String, attempt: Int, ttl: Duration, trace: String?) async throws(StoreUnavailable) -> InDoubtMark {
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.markInDoubtScript, keys: [key], arguments: [claim, owner, String(attempt), Self.seconds(ttl), TraceHeaders.traceparent(trace) ?? ""])
        }
        guard case .array(let items) = reply, let kind = items.first?.integer, let value = items.dropFirst().first?.string else {
            throw StoreUnavailable("unexpected answer to the in-doubt script: \(reply)")
        }
        switch kind {
        case 1: return .marked(value: value)
        case 2: return .completed(existing: value)
        default: return .other(current: value)
        }
    }

    public func complete(_ key: String, claim: String?, value: String, ttl: Duration, mapping: (wamid: String, send: MappedSend)?) async throws(StoreUnavailable) -> CompletionResult {
        let place = mapping.flatMap { $0.send.internalID.isEmpty ? nil : wamids.place(of: $0.wamid) }
        let wamidMember = mapping.map { #""wamid":"# + JSONWriter.quoted($0.wamid) } ?? ""
        // On a Redis Cluster the key and the mapping's bucket are in different slots: the mapping is
        // written first (true whatever becomes of the key), so a completion never goes without it.
        let together = client.isCluster ? nil : place
        if client.isCluster, let mapping, place != nil {
            try await mapWamids([(mapping.wamid, mapping.send, max(1, Int(ttl.components.seconds)))])
        }
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.completeScript, keys: [key] + (together.map { [$0.key] } ?? []),
                                      arguments: [claim ?? "", value, Self.seconds(ttl), wamidMember, place?.field ?? "", mapping?.send.stored ?? ""])
        }
        guard case .array(let items) = reply, let kind = items.first?.integer else { throw StoreUnavailable("unexpected answer to the completion script: \(reply)") }
        if kind == 1 { return .asClaimed }
        let current = items.dropFirst().first?.string
        return .claimLost(current: current?.isEmpty == false ? current : nil)
    }

    /// KEYS[1] the key; ARGV[1] owner, ARGV[2] age (ms). Returns 1 released, 2 too young, 0 not orphaned.
    static let releaseOrphanScript = RedisScript(LuaClock.functions + "\n" + isoFunctions + "\n" + """
        local existing = redis.call('GET', KEYS[1])
        if not existing then return 0 end
        local ok, state = pcall(cjson.decode, existing)
        if not ok or type(state) ~= 'table' or state.status ~= 'processing' or state.owner ~= ARGV[1] then return 0 end
        local since = epoch(state.since)
        if not since then return 0 end
        local now = now_ms()
        if now - since < tonumber(ARGV[2]) then return 2 end
        redis.call('DEL', KEYS[1])
        return 1
        """)

    public func releaseOrphan(_ key: String, owner: String, olderThan age: Duration) async throws(StoreUnavailable) -> OrphanRelease {
        let answer = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.releaseOrphanScript, keys: [key], arguments: [owner, String(age.milliseconds)]).integer
        }
        switch answer {
        case 1: return .released
        case 2: return .tooYoung
        default: return .notOrphaned
        }
    }

    public func release(_ key: String, claim: String) async throws(StoreUnavailable) -> Bool {
        try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.releaseScript, keys: [key], arguments: [claim]).integer == 1
        }
    }
}
