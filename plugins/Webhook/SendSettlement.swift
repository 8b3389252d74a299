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
/// keeping its TTL, and its wamid is mapped to its internalId (with the trace the key held,
/// `KeyState.trace`); other keys are left as they are.
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
    /// KEYS: idempotency keys; ARGV: per key, the completed value and the `"wamid":"…"` member it
    /// writes. Settles the keys a status proves sent. Returns {settled, left, traces}: per key 1 when it was
    /// settled now, and the seconds it has left when it now names that wamid (settled now or by an
    /// earlier copy of the status; -1: no TTL; 0: it names none or another), so a mapping not
    /// written the first time is written with Meta's retry; and the `trace` of the send settled
    /// now ('' for none), which its mapping keeps.
    static let settleScript = RedisScript("""
        local settled, left, traces = {}, {}, {}
        for i, key in ipairs(KEYS) do
          settled[i], left[i], traces[i] = 0, 0, ''
          local current = redis.call('GET', key)
          if current then
            local ok, state = pcall(cjson.decode, current)
            if ok and type(state) == 'table' and (state.status == 'processing' or state.status == 'in_doubt'
                or (state.status == 'completed' and (type(state.wamid) ~= 'string' or state.wamid == ''))) then
              redis.call('SET', key, ARGV[2 * i - 1], 'KEEPTTL')
              settled[i] = 1
              if type(state.trace) == 'string' then traces[i] = state.trace end
              current = ARGV[2 * i - 1]
            end
            if string.find(current, ARGV[2 * i], 1, true) then
              local ttl = redis.call('TTL', key)
              left[i] = ttl > 0 and ttl or -1
            end
          end
        end
        return {settled, left, traces}
        """)

    public func settle(_ sends: [SettledSend], at: Date) async throws(StoreUnavailable) -> Int {
        guard !sends.isEmpty else { return 0 }
        let client = self.client
        let answers = try await perSlot(sends, key: \.key) { group throws(StoreUnavailable) in
            let reply = try await self.perform { () async throws(RedisError) in
                try await client.evaluate(Self.settleScript, keys: group.map(\.key),
                                          arguments: group.flatMap { [SettledValue.completed(wamid: $0.wamid, at: at), #""wamid":"# + JSONWriter.quoted($0.wamid)] })
            }
            guard case .array(let parts) = reply, parts.count == 3, case .array(let settled) = parts[0], case .array(let left) = parts[1], case .array(let traces) = parts[2],
                  settled.count == group.count, left.count == group.count, traces.count == group.count else { throw StoreUnavailable("unexpected answer to the settle script: \(reply)") }
            return (0..<group.count).map { (settled: settled[$0].integer == 1, left: left[$0].integer ?? 0, trace: TraceHeaders.traceparent(traces[$0].string)) }
        }
        try await mapWamids(zip(sends, answers).filter { $0.1.left > 0 }.map { ($0.0.wamid, MappedSend(internalID: $0.0.internalID, traceparent: $0.1.trace), $0.1.left) }, keepExisting: true)
        return answers.count(where: \.settled)
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
                    let trace = TraceHeaders.traceparent((try? JSONValue(parsing: Array(current.value.utf8)))?.objectValue?["trace"]?.stringValue)
                    entries["wamid:\(send.wamid)"] = Entry(value: MappedSend(internalID: send.internalID, traceparent: trace).stored, expires: expires)
                }
                settled += 1
            }
            return settled
        }
    }
}
