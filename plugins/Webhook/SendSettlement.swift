import Foundation
import PipelineKit
import RedisClient
import RedisPlugin

/// A send that a delivery status proves was accepted (SPEC 13): its idempotency key, the wamid
/// the status carries and its internalId.
public struct SettledSend: Sendable, Equatable {
    public var key: String
    public var wamid: String
    public var internalID: String

    public init(key: String, wamid: String, internalID: String) {
        self.key = key
        self.wamid = wamid
        self.internalID = internalID
    }
}

/// Where the statuses pipeline settles the outbound pipeline's sends: a key still `processing`
/// (the status came before the worker's answer), `in_doubt` (the answer was lost) or `completed`
/// without a wamid (the answer was unreadable) becomes `completed` with the status's wamid,
/// keeping its TTL, and its wamid is mapped to its internalId; other keys are left as they are.
public protocol SendSettlement: Resource {
    /// Settles each send; how many keys changed.
    func settle(_ sends: [SettledSend], at: Date) async throws(StoreUnavailable) -> Int
}

/// The completed value of an idempotency key (SPEC 6), as the outbound pipeline writes it.
enum SettledValue {
    static func completed(wamid: String, at: Date) -> String {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.member("status", "completed")
        writer.member("wamid", wamid)
        writer.member("completed_at", UTCTimestamp.format(at))
        writer.endObject()
        return writer.text
    }

    /// Whether a key holding `current` is settled by a status: processing, in doubt, or completed without a wamid.
    static func unsettled(_ current: String) -> Bool {
        guard let state = (try? JSONValue(parsing: Array(current.utf8)))?.objectValue, let status = state["status"]?.stringValue else { return false }
        if status == "processing" || status == "in_doubt" { return true }
        return status == "completed" && (state["wamid"]?.stringValue ?? "").isEmpty
    }
}

extension RedisStore: SendSettlement {
    /// KEYS: per send, its idempotency key and its wamid's `wamids:{n}` bucket; ARGV: per send, the
    /// completed value, the wamid's field and the internalId. Returns how many keys were settled.
    static let settleScript = RedisScript(WamidBuckets.luaFunctions + "\n" + """
        local now = redis_now()
        local settled = 0
        for i = 1, #KEYS / 2 do
          local key = KEYS[2 * i - 1]
          local current = redis.call('GET', key)
          if current then
            local ok, state = pcall(cjson.decode, current)
            if ok and type(state) == 'table' and (state.status == 'processing' or state.status == 'in_doubt'
                or (state.status == 'completed' and (type(state.wamid) ~= 'string' or state.wamid == ''))) then
              redis.call('SET', key, ARGV[3 * i - 2], 'KEEPTTL')
              local ttl = redis.call('TTL', key)
              if ttl > 0 then bucket_put(KEYS[2 * i], ARGV[3 * i - 1], ARGV[3 * i], now + ttl, now) end
              settled = settled + 1
            end
          end
        end
        return settled
        """)

    public func settle(_ sends: [SettledSend], at: Date) async throws(StoreUnavailable) -> Int {
        guard !sends.isEmpty else { return 0 }
        let places = sends.map { wamids.place(of: $0.wamid) }
        let keys = zip(sends, places).flatMap { [$0.key, $1.key] }
        let arguments = zip(sends, places).flatMap { [SettledValue.completed(wamid: $0.wamid, at: at), $1.field, $0.internalID] }
        let reply = try await perform { () async throws(RedisError) in
            try await client.evaluate(Self.settleScript, keys: keys, arguments: arguments)
        }
        return reply.integer ?? 0
    }
}

extension MemoryStore: SendSettlement {
    public func settle(_ sends: [SettledSend], at: Date) async throws(StoreUnavailable) -> Int {
        try atomically { entries, now in
            var settled = 0
            for send in sends {
                guard let current = entries[send.key], SettledValue.unsettled(current.value) else { continue }
                entries[send.key]?.value = SettledValue.completed(wamid: send.wamid, at: at)
                if let expires = current.expires, expires > now {
                    entries["wamid:\(send.wamid)"] = Entry(value: send.internalID, expires: expires)
                }
                settled += 1
            }
            return settled
        }
    }
}
