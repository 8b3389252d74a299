import Foundation

/// The time of day as steps see it; pipeline tests replace it with a clock they advance.
public protocol WallClock: Sendable {
    func now() -> Date
}

/// The system clock.
public struct SystemWallClock: WallClock {
    public init() {}
    public func now() -> Date { Date() }
}

/// A clock that moves only when told to, for tests.
public final class ManualWallClock: WallClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    public init(start: Date = Date(timeIntervalSince1970: 1_800_000_000)) {
        current = start
    }

    public func now() -> Date {
        lock.withLock { current }
    }

    public func advance(by duration: Duration) {
        lock.withLock { current = current.addingTimeInterval(duration.secondsDouble) }
    }

    /// Moves the clock to `date` if that is later than now.
    public func advance(to date: Date) {
        lock.withLock { current = max(current, date) }
    }
}
