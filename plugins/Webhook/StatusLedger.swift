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
    /// The internalIds of the wamids that `mark_completed` recorded (`wamid:{wamid}`).
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
    static func of(_ status: String) -> Int {
        ["sent": 1, "delivered": 2, "read": 3, "played": 4][status] ?? 0
    }
}

extension RedisStore: StatusLedger {
    /// KEYS: `status:{wamid}` per status; ARGV: status, rank pairs. Returns one admission per
    /// status; writes nothing (a status seen earlier in the list counts as published).
    static let checkScript = RedisScript("""
        local result = {}
        local seen = {}
        local tops = {}
        for i, key in ipairs(KEYS) do
          local status = ARGV[2 * i - 1]
          local rank = tonumber(ARGV[2 * i])
          local mark = key .. '|' .. status
          if seen[mark] or redis.call('HEXISTS', key, 's:' .. status) == 1 then
            result[i] = 0
          else
            seen[mark] = true
            local top = tops[key] or tonumber(redis.call('HGET', key, 'rank') or '0')
            if rank > 0 and rank <= top then
              result[i] = -1
            else
              if rank > top then top = rank end
              result[i] = 1
            end
            tops[key] = top
          end
        end
        return result
        """)

    /// KEYS: `status:{wamid}` per status; ARGV: status, rank pairs, then the ttl (s). Marks each
    /// status published and raises the wamid's rank to it.
    static let recordScript = RedisScript("""
        local ttl = ARGV[#ARGV]
        for i, key in ipairs(KEYS) do
          local rank = tonumber(ARGV[2 * i])
          redis.call('HSET', key, 's:' .. ARGV[2 * i - 1], 1)
          if rank > tonumber(redis.call('HGET', key, 'rank') or '0') then redis.call('HSET', key, 'rank', rank) end
          redis.call('EXPIRE', key, ttl)
        end
        return 1
        """)

    public func internalIDs(of wamids: [String]) async throws(StoreUnavailable) -> [String: String] {
        guard !wamids.isEmpty else { return [:] }
        let reply = try await perform { () async throws(RedisError) in try await client.checked(["MGET"] + wamids.map { "wamid:\($0)" }) }
        guard case .array(let items) = reply else { return [:] }
        var found: [String: String] = [:]
        for (wamid, item) in zip(wamids, items) { if let id = item.string { found[wamid] = id } }
        return found
    }

    public func check(_ statuses: [(wamid: String, status: String, rank: Int)]) async throws(StoreUnavailable) -> [StatusAdmission] {
        guard !statuses.isEmpty else { return [] }
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.checkScript, keys: statuses.map { "status:\($0.wamid)" }, arguments: statuses.flatMap { [$0.status, String($0.rank)] })
        }
        guard case .array(let items) = reply, items.count == statuses.count else { throw StoreUnavailable("unexpected answer to the status script: \(reply)") }
        return items.map { StatusAdmission(rawValue: $0.integer ?? 1) ?? .publish }
    }

    public func record(_ statuses: [(wamid: String, status: String, rank: Int)], ttl: Duration) async throws(StoreUnavailable) {
        guard !statuses.isEmpty else { return }
        let arguments = statuses.flatMap { [$0.status, String($0.rank)] } + [Self.seconds(ttl)]
        _ = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.recordScript, keys: statuses.map { "status:\($0.wamid)" }, arguments: arguments)
        }
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
