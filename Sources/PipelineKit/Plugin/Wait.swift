import Foundation

/// "Not now, for this key, until then": a message waiting for its turn.
///
/// A wait that may end before `until` because another worker lifts what it waits for (a paused
/// template approved through the statuses pipeline) says how often to look again while it waits
/// in memory: parked, the message goes through its step again after `looksAgainAfter` (at most
/// `max_park`; at `until`, if sooner) and gets a new answer; sent round the source (parking full, the worker
/// stopping), it stays away until `until`, so a long wait costs one broker round trip, not one
/// per look.
///
/// ```swift
/// return .wait(Wait(key: "template:order_update:en_US", until: pauseEnd, reason: .templatePaused, looksAgainAfter: .seconds(5)))
/// ```
public struct Wait: Sendable, Equatable {
    /// What the message waits for (a sender's pace, a sender–recipient pair): waits are counted and fair by key.
    public var key: String
    public var until: Date
    public var reason: WaitReason
    /// While parked in memory, the step runs again after this even though `until` is later; nil: the wait ends at `until`.
    public var looksAgainAfter: Duration?

    public init(key: String, until: Date, reason: WaitReason, looksAgainAfter: Duration? = nil) {
        self.key = key
        self.until = until
        self.reason = reason
        self.looksAgainAfter = looksAgainAfter
    }

    /// When a message parked at `now` goes through its step again: a wait that looks again does so
    /// after `looksAgainAfter`, or `maxPark` (the longest a message parks) if that is shorter.
    public func inMemoryUntil(at now: Date, maxPark: Duration) -> Date {
        guard let looksAgainAfter else { return until }
        return min(until, now.addingTimeInterval(min(looksAgainAfter, maxPark).secondsDouble))
    }
}
