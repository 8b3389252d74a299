/// A priority lane of a source (SPEC 14): its messages get send slots, permits and intake before
/// those of less urgent lanes. A source without lanes hands out messages with no lane (`Message.lane` nil).
///
/// ```swift
/// let lanes = [Lane(name: "urgent", rank: 0), Lane(name: "normal", rank: 1), Lane(name: "bulk", rank: 2, maxShare: 0.5)]
/// ```
public struct Lane: Sendable, Hashable {
    /// The lane's name, as events, `status` and metrics show it.
    public var name: String
    /// 0 for the most urgent lane, then 1, 2, …
    public var rank: Int
    /// The share of a sender's sends this lane may take at most while another lane has messages
    /// waiting for that sender (1: no cap).
    public var maxShare: Double

    public init(name: String, rank: Int, maxShare: Double = 1) {
        self.name = name
        self.rank = rank
        self.maxShare = maxShare
    }
}
