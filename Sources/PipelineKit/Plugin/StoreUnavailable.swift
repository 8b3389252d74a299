/// A store did not answer (down, or slower than its command timeout): steps turn it into
/// `StepFailure(.unavailable, …)` and their `degradation` policy decides.
public struct StoreUnavailable: Error, Sendable, CustomStringConvertible {
    public var reason: String

    public init(_ reason: String) {
        self.reason = reason
    }

    public var description: String { reason }
}
