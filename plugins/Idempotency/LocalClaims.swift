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

    private let holders = Mutex<[String: Int]>([:])

    /// A message of this worker is about to claim `key`; true when no other one holds it (a
    /// `processing` value of this worker's, if the store has one, is then an orphan).
    func begin(_ key: String) -> Bool {
        holders.withLock { holders in
            holders[key, default: 0] += 1
            return holders[key] == 1
        }
    }

    /// The message no longer holds `key` here (released, completed, found a duplicate, or its claim failed).
    func end(_ key: String) {
        holders.withLock { holders in
            guard let count = holders[key] else { return }
            holders[key] = count > 1 ? count - 1 : nil
        }
    }
}
