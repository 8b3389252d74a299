import Foundation
import PipelineKit
import Synchronization

/// What taking a unit of a portfolio's messaging limit found.
public enum MessagingLimitTake: Sendable, Equatable {
    /// The recipient was sent a template in the last 24 h: no unit used.
    case counted
    /// A unit was taken for a new recipient, at `at` (epoch ms; `giveBack` needs it).
    case taken(at: Int64)
    /// The window is full: the oldest recipient leaves it then.
    case full(until: Date)
}

/// What a look at a portfolio's window found for one recipient (nothing taken).
public enum MessagingLimitLook: Sendable, Equatable {
    /// The recipient is counted already: a template to them costs no unit.
    case counted
    /// A unit would be free.
    case room
    /// The window is full: the oldest recipient leaves it then.
    case full(until: Date)
}

/// Unique recipients per portfolio over a rolling window, shared by every worker (SPEC 15): one
/// sorted set per portfolio, `msglimit:{portfolio}`, each recipient scored with their last
/// template's time. Exact, not approximate: a recipient is counted once however often they are written to.
public protocol MessagingLimitStore: Resource {
    /// Counts `recipient` in `key`'s window: already counted, a unit taken (fewer than `limit`
    /// counted), or full. Atomic across workers.
    func take(_ key: String, recipient: String, limit: Int, window: Duration) async throws(StoreUnavailable) -> MessagingLimitTake
    /// What `take` would find for `recipient` now, without taking or changing anything.
    func look(_ key: String, recipient: String, limit: Int, window: Duration) async throws(StoreUnavailable) -> MessagingLimitLook
    /// Gives a unit back (the Cloud API refused the message): only if `recipient`'s entry is still the one taken at `at`.
    func giveBack(_ key: String, recipient: String, takenAt at: Int64) async throws(StoreUnavailable)
    /// How many recipients the window of `key` counts now.
    func counted(_ key: String, window: Duration) async throws(StoreUnavailable) -> Int
}

/// The portfolios' messaging limits as `dispatch` applies them.
public struct MessagingLimits: Sendable {
    public let store: (any MessagingLimitStore)?
    /// Limits Meta announced, over the configured ones.
    public let announced: AnnouncedLimits
    /// The windows this worker found full lately.
    let fullWindows = FullWindows()
    /// Meta's window.
    public static let window: Duration = .seconds(86_400)

    public init(store: (any MessagingLimitStore)?, announced: AnnouncedLimits = AnnouncedLimits(store: nil)) {
        self.store = store
        self.announced = announced
    }

    public static func key(_ portfolio: String) -> String { "msglimit:\(portfolio)" }

    /// What a message of `lane` may use of `limit`: all of it in the most urgent lane (`urgent`);
    /// in the others, and without lanes, floor(0.9 × limit), at least 1 of a limit above 0 — the
    /// last 10 % is kept for urgent messages.
    public static func allowed(of limit: Int, lane: Lane? = nil) -> Int {
        if lane?.rank == 0 || limit <= 0 { return limit }
        return max(1, Int((Double(limit) * 0.9).rounded(.down)))
    }
}

/// Windows a take found full (by key and the part of the limit asked for), until their oldest
/// recipient leaves: while one is, `dispatch` looks at the window before a message's send slot (a
/// read that takes nothing), so a message that waits for the window — back every few minutes while
/// it stays full — takes no slot its sender's other messages would have used.
final class FullWindows: Sendable {
    private let until = Mutex<[String: Date]>([:])

    static func id(_ key: String, allowed: Int) -> String { "\(key)/\(allowed)" }

    func isFull(_ id: String, at now: Date) -> Bool {
        until.withLock { $0[id].map { $0 > now } ?? false }
    }

    /// What a take found: full until then, or room (nil).
    func found(_ id: String, fullUntil: Date?) {
        until.withLock { until in
            if until.count > 1024 { until.removeAll() }
            until[id] = fullUntil
        }
    }
}
