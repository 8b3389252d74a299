/// A message the runtime gives up on: where it failed and why.
public struct DeadLetter: Sendable, Equatable {
    public var step: String
    public var reason: String
    /// Deliveries made, this one included (`x-attempts`).
    public var attemptsMade: Int
    /// The error code of the system that refused the message, when it gave one.
    public var code: Int?
    /// Publish the letter even when the original went back to the source with its connection
    /// (`Message.outlivesItsDelivery`).
    public var evenIfRedelivered: Bool

    public init(step: String, reason: String, attemptsMade: Int, code: Int? = nil, evenIfRedelivered: Bool = false) {
        self.step = step
        self.reason = reason
        self.attemptsMade = attemptsMade
        self.code = code
        self.evenIfRedelivered = evenIfRedelivered
    }
}
