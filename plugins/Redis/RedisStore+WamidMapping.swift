import PipelineKit
import RedisClient

extension RedisStore {
    /// KEYS: per entry, its wamid's `wamids:{n}` bucket; ARGV[1]: '1' to keep a live mapping as it
    /// is; then per entry, the wamid's field, the mapped send and the seconds to keep it.
    static let mapScript = RedisScript(WamidBuckets.luaFunctions + "\n" + """
        local now = redis_now()
        local keep = ARGV[1] == '1'
        for i, key in ipairs(KEYS) do
          local field = ARGV[3 * i - 1]
          if not (keep and bucket_get(key, field, now)) then
            mapping_put(key, field, ARGV[3 * i], now + tonumber(ARGV[3 * i + 1]), now)
          end
        end
        return #KEYS
        """)

    /// Maps each wamid to its send (the internalId, with the send's trace when traced) for `seconds` (SPEC 10: for statuses that come without `biz_opaque_callback_data`);
    /// on a Redis Cluster one script per slot. `keepExisting`: a wamid already mapped keeps its
    /// mapping (a status repairing a missed one must not drop the trace `mark_completed` wrote).
    public func mapWamids(_ entries: [(wamid: String, send: MappedSend, seconds: Int)], keepExisting: Bool = false) async throws(StoreUnavailable) {
        let placed = entries.filter { !$0.send.internalID.isEmpty && $0.seconds > 0 }.map { (place: wamids.place(of: $0.wamid), entry: $0) }
        guard !placed.isEmpty else { return }
        let client = self.client
        _ = try await perSlot(placed, key: \.place.key) { group throws(StoreUnavailable) in
            _ = try await self.perform { () async throws(RedisError) in
                try await client.evaluate(Self.mapScript, keys: group.map(\.place.key),
                                          arguments: [keepExisting ? "1" : "0"] + group.flatMap { [$0.place.field, $0.entry.send.stored, String($0.entry.seconds)] })
            }
            return group.map { _ in true }
        }
    }
}
