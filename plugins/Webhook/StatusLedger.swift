import Foundation
import PipelineKit
import RedisClient
import RedisPlugin

/// What becomes of a status offered to the ledger.
public enum StatusAdmission: Int, Sendable, Equatable {
    /// New and not behind a later status: publish it.
    case publish = 1
    /// Already published (Meta re-delivered it).
    case duplicate = 0
    /// At or below a status already published for that wamid.
    case outOfOrder = -1
}

/// The state the status steps keep per wamid (Redis in production, memory in pipeline tests):
/// which internalId a wamid belongs to, and which statuses of it were published.
///
/// Deciding and recording are apart: `check` only reads, and a status is `record`ed once its
/// event is confirmed (`OrderStatusesStep.settled`), so a crash in between never leaves a status
/// "published" that never went out. Two copies of one POST handled at the same moment may both
/// publish (at least once); none is ever lost.
public protocol StatusLedger: Resource {
    /// The sends (internalId, traceparent) of the wamids that `mark_completed` recorded.
    func sends(of wamids: [String]) async throws(StoreUnavailable) -> [String: MappedSend]
    /// Whether each (wamid, status), in order, is to be published: once, and only while it moves
    /// forward (`rank` above every rank published before it, in the ledger or earlier in the list;
    /// rank 0: no order, e.g. `failed`). Reads only: nothing counts as published before `record`.
    func check(_ statuses: [(wamid: String, status: String, rank: Int)]) async throws(StoreUnavailable) -> [StatusAdmission]
    /// Records statuses as published (their events are confirmed), each wamid kept for `ttl`.
    func record(_ statuses: [(wamid: String, status: String, rank: Int)], ttl: Duration) async throws(StoreUnavailable)
}

/// The order statuses move in; others (failed, anything new) have none.
enum StatusRank {
    static let ranks = ["sent": 1, "delivered": 2, "read": 3, "played": 4]

    static func of(_ status: String) -> Int {
        ranks[status] ?? 0
    }
}

/// The statuses published for a wamid, as its field in a `statuses:{n}` bucket keeps them
/// (SPEC 17): a bit per known status (`sent` 1, `delivered` 2, `read` 4, `played` 8, `failed` 16),
/// then any other status by name, e.g. `7` (sent, delivered, read) or `16:deleted`. The layout
/// before buckets — a hash `status:{wamid}` with a field `s:{status}` per status — is still read.
enum PublishedStatuses {
    static let bits = ["sent": 1, "delivered": 2, "read": 4, "played": 8, "failed": 16]

    /// Lua: `status_load(bucket, field, old, now)` (`old`: the wamid's hash of the layout before
    /// buckets, read when its field is absent; nil: not read), `status_has(state, name)`, `status_add(state, name)`,
    /// `status_top(state)` (the highest rank published), `status_encode(state)`.
    static let luaFunctions = WamidBuckets.luaFunctions + "\n" + """
        local bits = {\(lua(bits))}
        local ranks = {\(lua(StatusRank.ranks))}
        local function status_add(state, name)
          if bits[name] then state.mask = bit.bor(state.mask, bits[name]) else state.names[name] = true end
        end
        local function status_has(state, name)
          if bits[name] then return bit.band(state.mask, bits[name]) ~= 0 end
          return state.names[name] == true
        end
        local function status_top(state)
          local top = 0
          for name, rank in pairs(ranks) do
            if rank > top and bit.band(state.mask, bits[name]) ~= 0 then top = rank end
          end
          return top
        end
        local function status_load(bucket, field, old, now)
          local state = {mask = 0, names = {}}
          local stored = bucket_get(bucket, field, now)
          if stored then
            local mask, names = string.match(stored, '^(%d+):?(.*)$')
            state.mask = tonumber(mask) or 0
            for name in string.gmatch(names or '', '[^,]+') do state.names[name] = true end
          elseif old then
            for _, key in ipairs(redis.call('HKEYS', old)) do
              local name = string.match(key, '^s:(.+)$')
              if name then status_add(state, name) end
            end
          end
          return state
        end
        local function status_encode(state)
          local names = {}
          for name in pairs(state.names) do names[#names + 1] = name end
          if #names == 0 then return tostring(state.mask) end
          table.sort(names)
          return state.mask .. ':' .. table.concat(names, ',')
        end
        """

    private static func lua(_ table: [String: Int]) -> String {
        table.sorted { $0.key < $1.key }.map { "['\($0.key)'] = \($0.value)" }.joined(separator: ", ")
    }
}

extension RedisStore: StatusLedger {
    /// KEYS: per wamid, its `wamids:{n}` bucket; ARGV[1]: '1' to read the layout before buckets
    /// (`wamid:{wamid}`; a single server only: those keys are not declared), then per wamid its
    /// field and the wamid. Returns each wamid's internalId, or nil.
    static let mappingScript = RedisScript(WamidBuckets.luaFunctions + "\n" + """
        local now = redis_now()
        local result = {}
        for i, key in ipairs(KEYS) do
          result[i] = mapping_get(key, ARGV[2 * i], now) or (ARGV[1] == '1' and redis.call('GET', 'wamid:' .. ARGV[2 * i + 1]))
        end
        return result
        """)

    /// KEYS: per status, its wamid's `statuses:{n}` bucket; ARGV[1]: '1' to read the layout before
    /// buckets (`status:{wamid}`, as above), then per status its wamid's field, the status and the
    /// wamid. Returns one admission per status; writes nothing (a status seen earlier in the list
    /// counts as published).
    static let checkScript = RedisScript(PublishedStatuses.luaFunctions + "\n" + """
        local now = redis_now()
        local result = {}
        local states = {}
        for i, bucket in ipairs(KEYS) do
          local field, status, wamid = ARGV[3 * i - 1], ARGV[3 * i], ARGV[3 * i + 1]
          local id = bucket .. '|' .. field
          local state = states[id] or status_load(bucket, field, ARGV[1] == '1' and 'status:' .. wamid or nil, now)
          states[id] = state
          if status_has(state, status) then
            result[i] = 0
          else
            local rank = ranks[status] or 0
            if rank > 0 and rank <= status_top(state) then result[i] = -1 else result[i] = 1 end
            status_add(state, status)
          end
        end
        return result
        """)

    /// KEYS and ARGV as the check's, then the ttl (s). Marks each status published; each wamid
    /// touched is kept for the ttl from now.
    static let recordScript = RedisScript(PublishedStatuses.luaFunctions + "\n" + """
        local now = redis_now()
        local ttl = tonumber(ARGV[#ARGV])
        local states = {}
        local order = {}
        for i, bucket in ipairs(KEYS) do
          local field, wamid = ARGV[3 * i - 1], ARGV[3 * i + 1]
          local id = bucket .. '|' .. field
          if not states[id] then
            states[id] = {bucket = bucket, field = field, state = status_load(bucket, field, ARGV[1] == '1' and 'status:' .. wamid or nil, now)}
            order[#order + 1] = id
          end
          status_add(states[id].state, ARGV[3 * i])
        end
        for _, id in ipairs(order) do
          local entry = states[id]
          bucket_put(entry.bucket, entry.field, status_encode(entry.state), now + ttl, now)
        end
        return #order
        """)

    /// '1' when the layout before buckets may hold state: on a single server (a cluster never had it).
    private var readsOldLayout: String { client.isCluster ? "0" : "1" }

    public func sends(of wamids: [String]) async throws(StoreUnavailable) -> [String: MappedSend] {
        guard !wamids.isEmpty else { return [:] }
        let placed = wamids.map { (wamid: $0, place: self.wamids.place(of: $0)) }
        let client = self.client, legacy = readsOldLayout
        let ids = try await perSlot(placed, key: \.place.key) { group throws(StoreUnavailable) in
            let reply = try await self.perform { () async throws(RedisError) in
                try await client.evaluate(Self.mappingScript, keys: group.map(\.place.key), arguments: [legacy] + group.flatMap { [$0.place.field, $0.wamid] })
            }
            guard case .array(let items) = reply, items.count <= group.count else { throw StoreUnavailable("unexpected answer to the mapping script: \(reply)") }
            return group.indices.map { items.indices.contains($0) ? items[$0].string : nil }
        }
        var found: [String: MappedSend] = [:]
        for (wamid, stored) in zip(wamids, ids) { if let stored { found[wamid] = MappedSend(stored: stored) } }
        return found
    }

    public func check(_ statuses: [(wamid: String, status: String, rank: Int)]) async throws(StoreUnavailable) -> [StatusAdmission] {
        guard !statuses.isEmpty else { return [] }
        return try await perLedgerSlot(statuses, script: Self.checkScript, extra: []) { reply, count throws(StoreUnavailable) in
            guard case .array(let items) = reply, items.count == count else { throw StoreUnavailable("unexpected answer to the status script: \(reply)") }
            return items.map { StatusAdmission(rawValue: $0.integer ?? 1) ?? .publish }
        }
    }

    public func record(_ statuses: [(wamid: String, status: String, rank: Int)], ttl: Duration) async throws(StoreUnavailable) {
        guard !statuses.isEmpty else { return }
        _ = try await perLedgerSlot(statuses, script: Self.recordScript, extra: [Self.seconds(ttl)]) { _, count in
            [Bool](repeating: true, count: count)
        }
    }

    /// Runs a ledger script per slot of the statuses' buckets (one call on a single server).
    private func perLedgerSlot<Answer: Sendable>(
        _ statuses: [(wamid: String, status: String, rank: Int)], script: RedisScript, extra: [String],
        _ answers: @escaping @Sendable (RedisReply, Int) throws(StoreUnavailable) -> [Answer]
    ) async throws(StoreUnavailable) -> [Answer] {
        let placed = statuses.map { (place: self.statuses.place(of: $0.wamid), wamid: $0.wamid, status: $0.status) }
        let client = self.client, legacy = readsOldLayout
        return try await perSlot(placed, key: \.place.key) { group throws(StoreUnavailable) in
            let reply = try await self.perform { () async throws(RedisError) in
                try await client.evaluate(script, keys: group.map(\.place.key), arguments: [legacy] + group.flatMap { [$0.place.field, $0.status, $0.wamid] } + extra)
            }
            return try answers(reply, group.count)
        }
    }
}

extension MemoryStore: StatusLedger {
    public func sends(of wamids: [String]) async throws(StoreUnavailable) -> [String: MappedSend] {
        try atomically { entries, _ in
            Dictionary(uniqueKeysWithValues: wamids.compactMap { wamid in entries["wamid:\(wamid)"].map { (wamid, MappedSend(stored: $0.value)) } })
        }
    }

    public func check(_ statuses: [(wamid: String, status: String, rank: Int)]) async throws(StoreUnavailable) -> [StatusAdmission] {
        try atomically { entries, _ -> [StatusAdmission] in
            var seen = Set<String>()
            var tops: [String: Int] = [:]
            return statuses.map { item -> StatusAdmission in
                let seenKey = "status:\(item.wamid):s:\(item.status)"
                guard !seen.contains(seenKey), entries[seenKey] == nil else { return .duplicate }
                seen.insert(seenKey)
                let top = tops[item.wamid] ?? entries["status:\(item.wamid):rank"].flatMap { Int($0.value) } ?? 0
                if item.rank > 0, item.rank <= top {
                    tops[item.wamid] = top
                    return .outOfOrder
                }
                tops[item.wamid] = max(top, item.rank)
                return .publish
            }
        }
    }

    public func record(_ statuses: [(wamid: String, status: String, rank: Int)], ttl: Duration) async throws(StoreUnavailable) {
        try atomically { entries, now in
            for item in statuses {
                entries["status:\(item.wamid):s:\(item.status)"] = Entry("1", ttl: ttl, now: now)
                let rankKey = "status:\(item.wamid):rank"
                let top = entries[rankKey].flatMap { Int($0.value) } ?? 0
                entries[rankKey] = Entry(String(max(top, item.rank)), ttl: ttl, now: now)
            }
        }
    }
}
