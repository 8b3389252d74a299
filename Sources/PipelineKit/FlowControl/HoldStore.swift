/// Holds shared by every worker of a pipeline (SPEC 8, 17): what one worker learned about a key
/// (a `131056` for a sender–recipient pair, a `131048` for a sender's marketing) holds the key on
/// every worker, and its escalation counts one outage however many workers met it. Keys are
/// grouped (by sender); `changes` says which groups changed, so a worker reads one small map on
/// each look, and a group's holds only when they changed.
///
/// ```swift
/// let hold = try await store.hold("pair:123:+5511…", group: "123", policy: pairPolicy, kind: .pairHold, startedAgo: .milliseconds(80))
/// if let change = hold.change { try await store.announce(group: "123", change: change) }   // others see it changed
/// let changed = try await store.changes()                                  // ["123": "7:1800000000123:513000"]
/// let news = try await store.holds(group: "123", since: lastRead)         // holds written since the last read
/// try await store.clear("pair:123:+5511…", group: "123", startedAgo: .milliseconds(80))   // after the pair's first success
/// ```
public protocol HoldStore: Resource {
    /// Records a failure of `key`: the hold in effect when there is one, or one that began before
    /// the failed request did (`startedAgo`: how long ago it began) — else the next length of
    /// `policy`, one longer than the key's last hold unless that was cleared or long forgotten.
    /// Atomic across workers, judged by the store's clock.
    /// A hold written (not one in effect already) comes with the group's `change` to `announce`.
    func hold(_ key: String, group: String, policy: EscalationPolicy, kind: WaitReason, startedAgo: Duration?) async throws(StoreUnavailable) -> SharedHold
    /// Names `change` as `group`'s last (`changes`), after its hold was written: a separate write,
    /// as the two may live on two masters of a Redis Cluster (the caller announces it again if it
    /// failed). Kept at least as long as the change it replaces would have been.
    func announce(group: String, change: String) async throws(StoreUnavailable)
    /// Each group whose holds changed lately, with a token that differs after each change.
    func changes() async throws(StoreUnavailable) -> [String: String]
    /// The holds of `group` not yet forgotten written after the read `since` (nil: all of them),
    /// ended ones included — all of them if the group's holds were begun again since (expired).
    func holds(group: String, since: HoldsRead?) async throws(StoreUnavailable) -> HoldsRead
    /// Ends `key`'s hold and resets its escalation (after a success) — unless the hold began after
    /// the successful request did (`startedAgo`: how long ago; nil: whenever it began). Returns
    /// false when the hold stands for that reason (true: none is left).
    @discardableResult
    func clear(_ key: String, group: String, startedAgo: Duration?) async throws(StoreUnavailable) -> Bool
}

/// One hold as a `HoldStore` keeps it.
public struct SharedHold: Sendable, Equatable {
    public var key: String
    public var kind: WaitReason
    /// Holds in a row since the key was last cleared, minus one (0: the first); within
    /// `countRange` (a count read from a store is input: counting on from it must not overflow).
    public var count: Int
    /// How long it still lasts (zero or less: it has ended).
    public var remaining: Duration
    /// When this call wrote it: the group's change, for `HoldStore.announce`.
    public var change: String?

    /// The counts a hold keeps (counting on from the end cannot overflow; a hold's length stops
    /// growing long before it, and distinct counts stay distinct holds).
    public static let countRange = 0...(1 << 30)

    public init(key: String, kind: WaitReason, count: Int, remaining: Duration, change: String? = nil) {
        self.key = key
        self.kind = kind
        self.count = min(max(count, Self.countRange.lowerBound), Self.countRange.upperBound)
        self.remaining = remaining
        self.change = change
    }
}

/// What `HoldStore.holds` found, and where the group's writes stood (the next read's `since`):
/// the last write's sequence number, in the group's `epoch` (when its holds were begun, again after they expired).
public struct HoldsRead: Sendable, Equatable {
    public var holds: [SharedHold]
    /// The sequence number of the group's last write (not a time).
    public var at: Int64
    public var epoch: Int64

    public init(holds: [SharedHold], at: Int64, epoch: Int64) {
        self.holds = holds
        self.at = at
        self.epoch = epoch
    }
}
