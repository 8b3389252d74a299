import Synchronization

/// The idempotency keys this worker process holds for messages it is handling now, across
/// pipeline reloads. A key that Redis says is `processing` by this worker but that no message
/// here holds was claimed by a claim whose answer never came (the reply missed
/// `command_timeout`): nobody is sending it, so the next claim takes it over once it is older
/// than a send can take, instead of waiting out the lease (`processing` by itself would otherwise
/// requeue the message for the whole lease), and such lost claims are released for other
/// workers once the store answers again.
///
/// ```swift
/// let alone = LocalClaims.shared.begin(key)   // before the claim is sent: true when no other message here holds it
/// LocalClaims.shared.end(key)                 // released, completed, or found a duplicate
/// // a claim that went unanswered: held while its message is here (`UnansweredClaim`), and
/// LocalClaims.shared.lost(key, owner: claimant, releaseAfter: orphanAge)
/// ```
final class LocalClaims: Sendable {
    static let shared = LocalClaims()

    private struct Holding {
        var count: Int
        var since: ContinuousClock.Instant
    }

    /// Who made a claim: the worker (its `processing` value's owner) and the store it was made in (a
    /// lost claim is released in its own store; another answers that it holds no such value).
    struct Claimant: Hashable {
        var worker: String
        var store: ObjectIdentifier
    }

    /// A claim whose answer was lost: its key may hold `owner`'s `processing` value with nobody sending.
    private struct Lost: Hashable {
        var key: String
        var owner: Claimant
    }

    private let holders = Mutex<[String: Holding]>([:])
    /// Lost claims and when to try to release them next.
    private let lost = Mutex<[Lost: ContinuousClock.Instant]>([:])
    /// How many lost claims wait for release: the path of every claim reads only this when none does.
    private let lostCount = Atomic<Int>(0)
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

    /// The claim of `key` by `owner` failed (its answer may have been lost after it ran): its value,
    /// if any, is to be released once it is older than a send can take (`after`), so that another
    /// worker's retry need not wait out the whole lease.
    func lost(_ key: String, owner: Claimant, releaseAfter after: Duration) {
        let due = ContinuousClock.now + after
        let count = lost.withLock { lost in
            if lost.count > 10_000 { lost.removeAll() }
            lost[Lost(key: key, owner: owner)] = due
            return lost.count
        }
        lostCount.store(count, ordering: .relaxed)
    }

    /// The lost claims of `owner` due for release and held by no message here.
    func dueLost(owner: Claimant) -> [String] {
        guard lostCount.load(ordering: .relaxed) > 0 else { return [] }
        let now = ContinuousClock.now
        let keys = lost.withLock { lost in lost.filter { $0.key.owner == owner && $0.value <= now }.map(\.key.key) }
        return holders.withLock { holders in keys.filter { holders[$0] == nil } }
    }

    /// The lost claim of `key` needs no more release (released, or no longer `owner`'s processing value);
    /// with `retryAfter`, it is tried again then.
    func settleLost(_ key: String, owner: Claimant, retryAfter: Duration? = nil) {
        let count = lost.withLock { lost in
            lost[Lost(key: key, owner: owner)] = retryAfter.map { ContinuousClock.now + $0 }
            return lost.count
        }
        lostCount.store(count, ordering: .relaxed)
    }

    /// The message no longer holds `key` here (released, completed, found a duplicate; or, for a claim
    /// that went unanswered, the message has gone: `UnansweredClaim`).
    func end(_ key: String) {
        holders.withLock { holders in
            guard let holding = holders[key] else { return }
            if holding.count > 1 { holders[key]?.count -= 1 } else { holders[key] = nil }
        }
    }
}
