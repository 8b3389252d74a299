import PipelineKit
import RedisClient

extension RedisStore {
    /// KEYS: per entry, its wamid's `wamids:{n}` bucket; ARGV: per entry, the wamid's field, the
    /// internalId and the seconds to keep it.
    static let mapScript = RedisScript(WamidBuckets.luaFunctions + "\n" + """
        local now = redis_now()
        for i, key in ipairs(KEYS) do
          bucket_put(key, ARGV[3 * i - 2], ARGV[3 * i - 1], now + tonumber(ARGV[3 * i]), now)
        end
        return #KEYS
        """)

    /// Maps each wamid to its internalId for `seconds` (SPEC 10: for statuses that come without
    /// `biz_opaque_callback_data`); on a Redis Cluster one script per slot.
    public func mapWamids(_ entries: [(wamid: String, internalID: String, seconds: Int)]) async throws(StoreUnavailable) {
        let placed = entries.filter { !$0.internalID.isEmpty && $0.seconds > 0 }.map { (place: wamids.place(of: $0.wamid), entry: $0) }
        guard !placed.isEmpty else { return }
        let client = self.client
        _ = try await perSlot(placed, key: \.place.key) { group throws(StoreUnavailable) in
            _ = try await self.perform { () async throws(RedisError) in
                try await client.evaluate(Self.mapScript, keys: group.map(\.place.key),
                                          arguments: group.flatMap { [$0.place.field, $0.entry.internalID, String($0.entry.seconds)] })
            }
            return group.map { _ in true }
        }
    }
}
