/// What becomes of a delivery; the source carries it out durably before it lets go of it.
public enum Settlement: Sendable, Equatable {
    /// Done: acknowledge.
    case ack
    /// Straight back to the source as it is (shutdown, a wait given up): no copy, no attempt used.
    case release
    /// Deliver a copy again after `after`, recording `attemptsMade` and `carried` on it, then acknowledge the original.
    /// `evenIfRedelivered`: publish the copy even when the original went back to the source with its
    /// connection (`Message.outlivesItsDelivery`); otherwise the source's own redelivery stands for it.
    case redeliver(after: Duration, attemptsMade: Int, carried: [String: String] = [:], evenIfRedelivered: Bool = false)
    /// Publish a copy where dead letters go, then acknowledge the original.
    case deadLetter(DeadLetter)
}
