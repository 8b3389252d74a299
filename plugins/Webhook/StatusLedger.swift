import Foundation
import PipelineKit
import RedisClient
import RedisPlugin

/// What happened to a status offered to the ledger.
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
public protocol StatusLedger: Resource {
    /// The internalIds of the wamids that `mark_completed` recorded (`wamid:{wamid}`).
    func internalIDs(of wamids: [String]) async throws(StoreUnavailable) -> [String: String]
    /// Offers each (wamid, status) in order: a status is published once, and only while it moves
    /// forward (`rank` above every rank published before; rank 0: no order, e.g. `failed`).
    func admit(_ statuses: [(wamid: String, status: String, rank: Int)], ttl: Duration) async throws(StoreUnavailable) -> [StatusAdmission]
    /// Takes back admissions whose events were not published after all (Meta will deliver them again).
    func retract(_ statuses: [(wamid: String, status: String, rank: Int)]) async throws(StoreUnavailable)
}

/// The order statuses move in; others (failed, anything new) have none.
enum StatusRank {
    static func of(_ status: String) -> Int {
        ["sent": 1, "delivered": 2, "read": 3, "played": 4][status] ?? 0
    }
}

extension RedisStore: StatusLedger {
    /// KEYS: `status:{wamid}` per status; ARGV: status, rank pairs, then the ttl (s). Returns one admission per status.
    static let admitScript = RedisScript("""
        local ttl = ARGV[#ARGV]
        local result = {}
        for i, key in ipairs(KEYS) do
          local status = ARGV[2 * i - 1]
          local rank = tonumber(ARGV[2 * i])
          if redis.call('HSETNX', key, 's:' .. status, 1) == 0 then
            result[i] = 0
          else
            local top = tonumber(redis.call('HGET', key, 'rank') or '0')
            if rank > 0 and rank <= top then
              result[i] = -1
            else
              if rank > top then redis.call('HSET', key, 'rank', rank) end
              result[i] = 1
            end
            redis.call('EXPIRE', key, ttl)
          end
        end
        return result
        """)

    /// KEYS: `status:{wamid}`; ARGV: status, rank pairs. Forgets each status and, when the wamid's
    /// rank is still the one this status set, lowers it to the highest rank still recorded.
    static let retractScript = RedisScript("""
        local ranks = {sent = 1, delivered = 2, read = 3, played = 4}
        for i, key in ipairs(KEYS) do
          local status = ARGV[2 * i - 1]
          local rank = tonumber(ARGV[2 * i])
          redis.call('HDEL', key, 's:' .. status)
          if rank > 0 and tonumber(redis.call('HGET', key, 'rank') or '0') == rank then
            local top = 0
            for name, value in pairs(ranks) do
              if value < rank and redis.call('HEXISTS', key, 's:' .. name) == 1 and value > top then top = value end
            end
            redis.call('HSET', key, 'rank', top)
          end
        end
        return 1
        """)

    public func retract(_ statuses: [(wamid: String, status: String, rank: Int)]) async throws(StoreUnavailable) {
        guard !statuses.isEmpty else { return }
        _ = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.retractScript, keys: statuses.map { "status:\($0.wamid)" }, arguments: statuses.flatMap { [$0.status, String($0.rank)] })
        }
    }

    public func internalIDs(of wamids: [String]) async throws(StoreUnavailable) -> [String: String] {
        guard !wamids.isEmpty else { return [:] }
        let reply = try await perform { () async throws(RedisError) in try await client.checked(["MGET"] + wamids.map { "wamid:\($0)" }) }
        guard case .array(let items) = reply else { return [:] }
        var found: [String: String] = [:]
        for (wamid, item) in zip(wamids, items) { if let id = item.string { found[wamid] = id } }
        return found
    }

    public func admit(_ statuses: [(wamid: String, status: String, rank: Int)], ttl: Duration) async throws(StoreUnavailable) -> [StatusAdmission] {
        guard !statuses.isEmpty else { return [] }
        let arguments = statuses.flatMap { [$0.status, String($0.rank)] } + [Self.seconds(ttl)]
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.admitScript, keys: statuses.map { "status:\($0.wamid)" }, arguments: arguments)
        }
        guard case .array(let items) = reply, items.count == statuses.count else { throw StoreUnavailable("unexpected answer to the status script: \(reply)") }
        return items.map { StatusAdmission(rawValue: $0.integer ?? 1) ?? .publish }
    }
}

extension MemoryStore: StatusLedger {
    public func retract(_ statuses: [(wamid: String, status: String, rank: Int)]) async throws(StoreUnavailable) {
        try atomically { entries, _ in
            for item in statuses {
                entries["status:\(item.wamid):s:\(item.status)"] = nil
                let rankKey = "status:\(item.wamid):rank"
                guard item.rank > 0, entries[rankKey]?.value == String(item.rank) else { continue }
                let top = ["sent", "delivered", "read", "played"].filter { entries["status:\(item.wamid):s:\($0)"] != nil }.map(StatusRank.of).filter { $0 < item.rank }.max() ?? 0
                entries[rankKey]?.value = String(top)
            }
        }
    }

    public func internalIDs(of wamids: [String]) async throws(StoreUnavailable) -> [String: String] {
        try atomically { entries, _ in
            Dictionary(uniqueKeysWithValues: wamids.compactMap { wamid in entries["wamid:\(wamid)"].map { (wamid, $0.value) } })
        }
    }

    public func admit(_ statuses: [(wamid: String, status: String, rank: Int)], ttl: Duration) async throws(StoreUnavailable) -> [StatusAdmission] {
        try atomically { entries, now in
            statuses.map { item in
                let seenKey = "status:\(item.wamid):s:\(item.status)"
                let rankKey = "status:\(item.wamid):rank"
                guard entries[seenKey] == nil else { return .duplicate }
                entries[seenKey] = Entry("1", ttl: ttl, now: now)
                let top = entries[rankKey].flatMap { Int($0.value) } ?? 0
                if item.rank > 0, item.rank <= top { return .outOfOrder }
                entries[rankKey] = Entry(String(max(top, item.rank)), ttl: ttl, now: now)
                return .publish
            }
        }
    }
}
