import Foundation

/// "Not now, for this key, until then": a message waiting for its turn.
public struct Wait: Sendable, Equatable {
    /// What the message waits for (a sender's pace, a sender–recipient pair): waits are counted and fair by key.
    public var key: String
    public var until: Date
    public var reason: WaitReason

    public init(key: String, until: Date, reason: WaitReason) {
        self.key = key
        self.until = until
        self.reason = reason
    }
}
