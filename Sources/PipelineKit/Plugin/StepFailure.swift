/// A step failed; the runtime applies the step's `on_error` or `degradation` policy.
public struct StepFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Kind: String, Sendable {
        /// The message itself is wrong (schema, JSON): retrying cannot help.
        case invalid
        /// May succeed later (timeouts, 5xx).
        case transient
        /// Will never succeed for this message.
        case permanent
        /// Not the message's fault: the sender's credentials or account (token expired, …).
        /// The message waits without using an attempt, and its `pauseScope` is paused.
        case senderSide = "sender_side"
        /// The step's resource is down or too slow: the `degradation` policy applies.
        case unavailable
        /// An irreversible step may have taken effect though it failed (its request was written and
        /// the answer lost): what the steps before it claimed is kept, never given back — a release
        /// would let the message be sent again — and the message waits without using an attempt.
        case inDoubt = "in_doubt"
    }

    public var kind: Kind
    public var reason: String
    /// The least wait before trying again, when the failure says.
    public var retryAfter: Duration?
    /// The error code of the system that refused, when it gave one (dead letters carry it as `x-error-code`).
    public var code: Int?
    /// For sender-side failures: what is paused (e.g. one sender's token).
    public var pauseScope: PauseScope?
    /// A code that is not a number (`in_doubt`), for outcome events when `code` is nil.
    public var symbolicCode: String?

    public init(_ kind: Kind, _ reason: String, retryAfter: Duration? = nil, code: Int? = nil, pauseScope: PauseScope? = nil, symbolicCode: String? = nil) {
        self.kind = kind
        self.reason = reason
        self.retryAfter = retryAfter
        self.code = code
        self.pauseScope = pauseScope
        self.symbolicCode = symbolicCode
    }

    public var description: String { "\(kind.rawValue): \(reason)" }
}
