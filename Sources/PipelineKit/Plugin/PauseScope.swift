/// What a sender-side failure pauses.
public struct PauseScope: Sendable, Hashable {
    /// The hold key steps check before they act (`FlowControl.holds`).
    public var key: String
    /// Whether every message of the pipeline is concerned: the source then stops consuming meanwhile.
    public var coversAll: Bool
    /// A short, fixed label for why (`token_rejected`, …): the `reason` of `outbound_consumption_paused`.
    public var cause: String
    /// What it pauses, by the names its plugin gives them (the senders of a token), for `/health`; empty when not listed.
    public var covers: [String]

    public init(key: String, coversAll: Bool, cause: String = "sender_side", covers: [String] = []) {
        self.key = key
        self.coversAll = coversAll
        self.cause = cause
        self.covers = covers
    }

    /// The same scope, paused for `cause`.
    public func because(_ cause: String) -> PauseScope {
        PauseScope(key: key, coversAll: coversAll, cause: cause, covers: covers)
    }
}
