import Synchronization

/// The idempotency keys this worker process holds for messages it is handling now, across
/// pipeline reloads. A key that Redis says is `processing` by this worker but that no message
/// here holds was claimed by a claim whose answer never came (the reply missed
/// `command_timeout`): nobody is sending it, so the next claim takes it over at once instead
/// of waiting out the lease (`processing` by itself would otherwise requeue the message for the
/// whole lease).
///
/// ```swift
/// LocalClaims.shared.begin(key)          // before the claim is sent
/// let orphaned = LocalClaims.shared.heldOnlyOnce(key)
/// LocalClaims.shared.end(key)            // released, completed, or the claim failed
/// ```
final class LocalClaims: Sendable {
    static let shared = LocalClaims()

    private struct Holding {
        var count: Int
        var since: ContinuousClock.Instant
    }

    private let holders = Mutex<[String: Holding]>([:])
    /// A holding older than this is forgotten (a completion that never got written leaves one; its
    /// key's lease decides by then): the table stays bounded through any Redis outage.
    static let forgetAfter = Duration.seconds(1800)

    /// A message of this worker is about to claim `key`; true when no other one holds it (a
    /// `processing` value of this worker's, if the store has one, is then an orphan).
    func begin(_ key: String) -> Bool {
        let now = ContinuousClock.now
        return holders.withLock { holders in
            if holders.count > 10_000 { holders = holders.filter { now - $0.value.since < Self.forgetAfter } }
            holders[key, default: Holding(count: 0, since: now)].count += 1
            return holders[key]?.count == 1
        }
    }

    /// The message no longer holds `key` here (released, completed, found a duplicate, or its claim failed).
    func end(_ key: String) {
        holders.withLock { holders in
            guard let holding = holders[key] else { return }
            if holding.count > 1 { holders[key]?.count -= 1 } else { holders[key] = nil }
        }
    }
}
