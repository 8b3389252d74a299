/// Send slots shared by every worker of a pipeline (GCRA in Redis): a resource that hands out
/// the next slots of a key, `interval` apart, but never one more than `horizon` ahead of its now —
/// so no worker holds slots for later messages that a more urgent one, anywhere, would need.
///
/// ```swift
/// let grant = try await store.takeSlots(key: "throughput:123", interval: .milliseconds(13), count: 8, spare: 2, within: .milliseconds(100))
/// // grant.count slots at now + grant.first, + 13 ms, …; none (count 0): ask again in grant.first
/// ```
public protocol SlotStore: Resource {
    /// Reserves up to `count` consecutive slots of `key` spaced `interval` apart, all within
    /// `horizon` of the store's now — and up to `spare` more if the key's capacity is idle (no
    /// slot of it reserved beyond the store's now), judged in the same step.
    func takeSlots(key: String, interval: Duration, count: Int, spare: Int, within horizon: Duration) async throws -> SlotGrant
}

extension SlotStore {
    /// Reserves up to `count` slots, none spare.
    public func takeSlots(key: String, interval: Duration, count: Int, within horizon: Duration) async throws -> SlotGrant {
        try await takeSlots(key: key, interval: interval, count: count, spare: 0, within: horizon)
    }
}

/// What `SlotStore.takeSlots` reserved.
public struct SlotGrant: Sendable, Equatable {
    /// How far from the store's now the first slot is; with no slot, how long until one fits the horizon.
    public var first: Duration
    /// Slots reserved (0: the horizon is full).
    public var count: Int

    public init(first: Duration, count: Int) {
        self.first = first
        self.count = count
    }
}
