/// Holds shared by every worker of a pipeline (SPEC 8, 17): what one worker learned about a key
/// (a `131056` for a sender–recipient pair, a `131048` for a sender's marketing) holds the key on
/// every worker, and its escalation counts one outage however many workers met it. Keys are
/// grouped (by sender); `changes` says which groups changed, so a worker reads one small map on
/// each look, and a group's holds only when they changed.
///
/// ```swift
/// let hold = try await store.hold("pair:123:+5511…", group: "123", policy: pairPolicy, kind: .pairHold, startedAgo: .milliseconds(80))
/// let changed = try await store.changes()                                  // ["123": "7:1800000000123"]
/// let news = try await store.holds(group: "123", since: lastRead?.at)     // holds written since the last read
/// try await store.clear("pair:123:+5511…", group: "123", startedAgo: .milliseconds(80))   // after the pair's first success
/// ```
public protocol HoldStore: Resource {
    /// Records a failure of `key`: the hold in effect when there is one, or one that began before
    /// the failed request did (`startedAgo`: how long ago it began) — else the next length of
    /// `policy`, one longer than the key's last hold unless that was cleared or long forgotten.
    /// Atomic across workers, judged by the store's clock.
    func hold(_ key: String, group: String, policy: EscalationPolicy, kind: WaitReason, startedAgo: Duration?) async throws(StoreUnavailable) -> SharedHold
    /// Each group whose holds changed lately, with a token that differs after each change.
    func changes() async throws(StoreUnavailable) -> [String: String]
    /// The holds of `group` not yet forgotten written after the read that returned `since`
    /// (nil: all of them), ended ones included.
    func holds(group: String, since: Int64?) async throws(StoreUnavailable) -> HoldsRead
    /// Ends `key`'s hold and resets its escalation (after a success) — unless the hold began after
    /// the successful request did (`startedAgo`: how long ago; nil: whenever it began).
    func clear(_ key: String, group: String, startedAgo: Duration?) async throws(StoreUnavailable)
}

/// One hold as a `HoldStore` keeps it.
public struct SharedHold: Sendable, Equatable {
    public var key: String
    public var kind: WaitReason
    /// Holds in a row since the key was last cleared, minus one (0: the first).
    public var count: Int
    /// How long it still lasts (zero or less: it has ended).
    public var remaining: Duration

    public init(key: String, kind: WaitReason, count: Int, remaining: Duration) {
        self.key = key
        self.kind = kind
        self.count = count
        self.remaining = remaining
    }
}

/// What `HoldStore.holds` found, and where the group's writes stood (the next read's `since`).
public struct HoldsRead: Sendable, Equatable {
    public var holds: [SharedHold]
    public var at: Int64

    public init(holds: [SharedHold], at: Int64) {
        self.holds = holds
        self.at = at
    }
}
