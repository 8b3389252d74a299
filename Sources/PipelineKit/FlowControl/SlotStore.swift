/// Send slots shared by every worker of a pipeline (GCRA in Redis): a resource that can
/// hand out the next `count` slots of a key, `interval` apart.
///
/// ```swift
/// let first = try await store.takeSlots(key: "throughput:123", interval: .milliseconds(13), count: 8)
/// // slots at now + first, now + first + 13 ms, … (7 more)
/// ```
public protocol SlotStore: Resource {
    /// Reserves `count` consecutive slots of `key` spaced `interval` apart; returns how far
    /// from now (the store's now) the first one is (zero when the key is idle).
    func takeSlots(key: String, interval: Duration, count: Int) async throws -> Duration
}
