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
    /// The internalIds of the wamids that `mark_completed` recorded.
    func internalIDs(of wamids: [String]) async throws(StoreUnavailable) -> [String: String]
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

    /// Lua: `status_load(bucket, field, old, now)`, `status_has(state, name)`, `status_add(state, name)`,
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
          else
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
    /// KEYS: a wamid's `wamids:{n}` bucket and its `wamid:{wamid}` key of the layout before buckets,
    /// per wamid; ARGV: its field. Returns each wamid's internalId, or nil.
    static let mappingScript = RedisScript(WamidBuckets.luaFunctions + "\n" + """
        local now = redis_now()
        local result = {}
        for i = 1, #ARGV do
          result[i] = bucket_get(KEYS[2 * i - 1], ARGV[i], now) or redis.call('GET', KEYS[2 * i])
        end
        return result
        """)

    /// KEYS: a wamid's `statuses:{n}` bucket and its `status:{wamid}` hash of the layout before
    /// buckets, per status; ARGV: the wamid's field and the status, per status. Returns one admission
    /// per status; writes nothing (a status seen earlier in the list counts as published).
    static let checkScript = RedisScript(PublishedStatuses.luaFunctions + "\n" + """
        local now = redis_now()
        local result = {}
        local states = {}
        for i = 1, #KEYS / 2 do
          local bucket, field, status = KEYS[2 * i - 1], ARGV[2 * i - 1], ARGV[2 * i]
          local id = bucket .. '|' .. field
          local state = states[id] or status_load(bucket, field, KEYS[2 * i], now)
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
        for i = 1, #KEYS / 2 do
          local bucket, field = KEYS[2 * i - 1], ARGV[2 * i - 1]
          local id = bucket .. '|' .. field
          if not states[id] then
            states[id] = {bucket = bucket, field = field, state = status_load(bucket, field, KEYS[2 * i], now)}
            order[#order + 1] = id
          end
          status_add(states[id].state, ARGV[2 * i])
        end
        for _, id in ipairs(order) do
          local entry = states[id]
          bucket_put(entry.bucket, entry.field, status_encode(entry.state), now + ttl, now)
        end
        return 1
        """)

    public func internalIDs(of wamids: [String]) async throws(StoreUnavailable) -> [String: String] {
        guard !wamids.isEmpty else { return [:] }
        let places = wamids.map(self.wamids.place)
        let keys = zip(wamids, places).flatMap { [$1.key, "wamid:\($0)"] }
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.mappingScript, keys: keys, arguments: places.map(\.field))
        }
        guard case .array(let items) = reply else { return [:] }
        var found: [String: String] = [:]
        for (wamid, item) in zip(wamids, items) { if let id = item.string { found[wamid] = id } }
        return found
    }

    public func check(_ statuses: [(wamid: String, status: String, rank: Int)]) async throws(StoreUnavailable) -> [StatusAdmission] {
        guard !statuses.isEmpty else { return [] }
        let (keys, arguments) = ledgerKeys(statuses)
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.checkScript, keys: keys, arguments: arguments)
        }
        guard case .array(let items) = reply, items.count == statuses.count else { throw StoreUnavailable("unexpected answer to the status script: \(reply)") }
        return items.map { StatusAdmission(rawValue: $0.integer ?? 1) ?? .publish }
    }

    public func record(_ statuses: [(wamid: String, status: String, rank: Int)], ttl: Duration) async throws(StoreUnavailable) {
        guard !statuses.isEmpty else { return }
        let (keys, arguments) = ledgerKeys(statuses)
        _ = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.recordScript, keys: keys, arguments: arguments + [Self.seconds(ttl)])
        }
    }

    /// Per status: its wamid's bucket and old-layout key; its wamid's field and the status.
    private func ledgerKeys(_ statuses: [(wamid: String, status: String, rank: Int)]) -> (keys: [String], arguments: [String]) {
        var keys: [String] = [], arguments: [String] = []
        for item in statuses {
            let place = self.statuses.place(of: item.wamid)
            keys += [place.key, "status:\(item.wamid)"]
            arguments += [place.field, item.status]
        }
        return (keys, arguments)
    }
}

extension MemoryStore: StatusLedger {
    public func internalIDs(of wamids: [String]) async throws(StoreUnavailable) -> [String: String] {
        try atomically { entries, _ in
            Dictionary(uniqueKeysWithValues: wamids.compactMap { wamid in entries["wamid:\(wamid)"].map { (wamid, $0.value) } })
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
