import Synchronization

/// What the connections of one pool tell each other: when one of them last connected. A
/// connection waiting out its reconnect backoff tries again at once when a sibling got through
/// after its own last failure — the server is back, and its commands need not fail for up to
/// the rest of a backoff while the pool's other connections already work.
final class PoolConnectivity: Sendable {
    private let lastConnected = Mutex<ContinuousClock.Instant?>(nil)

    func connected() {
        lastConnected.withLock { $0 = .now }
    }

    /// Whether a connection of the pool connected after `instant`.
    func connected(after instant: ContinuousClock.Instant) -> Bool {
        lastConnected.withLock { $0.map { $0 > instant } ?? false }
    }
}
