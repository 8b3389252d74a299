import Foundation
import Metrics
import PipelineKit
import Synchronization

/// Sends in doubt (SPEC 13): the send's request was written and its answer lost, so Meta may have
/// accepted it. The key becomes `in_doubt` and the message waits — never sent again blindly — until
/// a delivery status settles it (the statuses pipeline writes the key `completed`), or the window
/// ends and `InDoubtPolicy.decision` resends it or dead-letters it.
extension IdempotencyStep {
    /// `Message.carried` note of a message whose own send went in doubt: settled, it ends as sent
    /// (another copy of it ends as a duplicate).
    static let inDoubtNote = "in-doubt"

    /// The send after this step went in doubt: the key becomes `in_doubt` (unless a status settled it
    /// first), and this step runs again to wait for the outcome. Nothing is given back: the claim
    /// leaves the message, so no `undo` can release the key of a message that may have been sent.
    public func holdInDoubt(_ message: inout Message, _ context: StepContext) async -> Bool {
        guard let claim = message.values[IdempotencyClaimKey.self] else { return false }
        message.values[IdempotencyClaimKey.self] = nil
        message.carried[Self.inDoubtNote] = "1"
        LocalClaims.shared.end(claim.key)
        InDoubtWaits.shared.begin(claim.key)
        await mark(claim.key, claim: claim.value, &message, context)
        return true
    }

    /// Rewrites the key `in_doubt`; a failure leaves it `processing` by this worker, which the next
    /// run marks again (`resolveInDoubt`, `.inFlight`).
    private func mark(_ key: String, claim: String, _ message: inout Message, _ context: StepContext) async {
        do {
            switch try await store.markInDoubt(key, claim: claim, owner: context.workerID, attempt: message.attempt, ttl: ttl) {
            case .marked, .completed: return
            case .other(let current):
                context.logger.warning("send in doubt, and its key holds another worker's value: left as it is", metadata: ["found": .string(KeyState.decode(current)?.status ?? "unreadable")])
            }
        } catch {
            context.logger.warning("send in doubt, not recorded yet (the store is unavailable): the key stays processing, marked on the next try", metadata: ["error": .string(error.reason)])
        }
    }

    /// Claims a key left in doubt past its window for a resend, whatever the pipeline's `on_in_doubt`.
    private func claimAgain(_ key: String, _ context: StepContext) async throws -> ClaimResult {
        do {
            return try await store.claim(key, owner: context.workerID, ttl: ttl, lease: lease, takeOverOwnAfter: nil, inDoubt: InDoubtPolicy(window: .zero, decision: .resend))
        } catch {
            LocalClaims.shared.end(key)
            throw StepFailure(.unavailable, "idempotency store: \(error.reason)")
        }
    }

    /// What the claim found, when it concerns a send in doubt (this message's own, or another copy's);
    /// nil to go on as usual.
    func resolveInDoubt(_ result: ClaimResult, key: String, _ message: inout Message, _ context: StepContext) async throws -> StepOutcome? {
        let own = message.carried[Self.inDoubtNote] != nil
        switch result {
        case .inDoubt(let existing, let remaining):
            let state = KeyState.decode(existing)
            // Redelivered after its worker stopped (the same delivery as the one whose send is in doubt): it ends as that send would have.
            if !own, state?.attempt == message.attempt { message.carried[Self.inDoubtNote] = "1" }
            InDoubtWaits.shared.begin(key)
            let age = context.inDoubt.window - remaining
            let nextLook = min(remaining, min(max(age / 4, .seconds(1)), .seconds(30)))
            return .wait(Wait(key: "in_doubt:\(key)", until: context.clock.now().addingTimeInterval(nextLook.secondsDouble), reason: .inDoubt))
        case .completed(let existing) where own:
            let wamid = KeyState.decode(existing)?.wamid.flatMap { $0.isEmpty ? nil : $0 }
            message.values[DeliveryReceiptKey.self] = wamid
            message.report("resolvedBy", .string("status"))
            message.carried[Self.inDoubtNote] = nil
            InDoubtWaits.shared.end(key, resolution: "status")
            return .alreadySent("in doubt, settled by a status\(wamid.map { " as \($0)" } ?? "")")
        case .resending(let value, let previous):
            let attempt = KeyState.decode(previous)?.attempt ?? message.attempt
            context.logger.warning("send in doubt and no status within the window: sending it again", metadata: ["window": .string(DurationParser.format(context.inDoubt.window)), "attempt": "\(attempt + 1)"])
            message.attempt = attempt + 1
            message.carried[Self.inDoubtNote] = nil
            message.values[IdempotencyClaimKey.self] = IdempotencyClaim(key: key, value: value)
            InDoubtWaits.shared.end(key, resolution: "resent")
            return .next
        case .inDoubtExpired where message.carried[ReplayNote.carriedKey] != nil:
            // Dead-lettered in doubt, then replayed by an operator: that is the decision to send it again.
            _ = LocalClaims.shared.begin(key)
            let replayed = try await claimAgain(key, context)
            if case .resending = replayed {} else { LocalClaims.shared.end(key) }
            return try await resolveInDoubt(replayed, key: key, &message, context)
        case .inDoubtExpired(let existing):
            let since = KeyState.decode(existing)?.since ?? "unknown"
            InDoubtWaits.shared.end(key, resolution: "dead_letter")
            throw StepFailure(.permanent, "in doubt: no status within \(DurationParser.format(context.inDoubt.window)) of the send at \(since); not sent again (on_in_doubt: dead_letter): replay releases its key",
                              symbolicCode: "in_doubt")
        case .inFlight(let existing) where own && KeyState.decode(existing)?.owner == context.workerID:
            // Its send went in doubt while the store was unavailable: marked now, then waited for.
            await mark(key, claim: existing, &message, context)
            return .wait(Wait(key: "in_doubt:\(key)", until: context.clock.now(), reason: .inDoubt))
        case .claimed, .completed, .inFlight, .tookOver:
            return nil
        }
    }
}

/// Sends in doubt this worker waits on: `outbound_in_doubt` (waiting now) and
/// `outbound_in_doubt_total{resolution}` (`status`, `resent`, `dead_letter`).
final class InDoubtWaits: Sendable {
    static let shared = InDoubtWaits()

    private let waiting = Mutex<[String: ContinuousClock.Instant]>([:])
    private let gauge = Gauge(label: "outbound_in_doubt")
    private let resolutions = Dictionary(uniqueKeysWithValues: ["status", "resent", "dead_letter"].map {
        ($0, Counter(label: "outbound_in_doubt_total", dimensions: [("resolution", $0)]))
    })

    private init() {
        gauge.record(0)
    }

    /// Makes the series exist from the start (at 0), so alerts see them before the first send in doubt.
    static func register() {
        _ = shared
    }

    /// A message waits on `key` (again); one that left this worker (a shutdown, a trip through the
    /// source to another) is forgotten a minute after it was last seen.
    func begin(_ key: String) {
        let now = ContinuousClock.now
        gauge.record(waiting.withLock { waiting in
            waiting[key] = now
            waiting = waiting.filter { now - $0.value < .seconds(60) }
            return waiting.count
        })
    }

    /// The send on `key` is settled (`status`), sent again (`resent`) or dead-lettered.
    func end(_ key: String, resolution: String) {
        resolutions[resolution]?.increment()
        gauge.record(waiting.withLock { waiting in
            waiting[key] = nil
            return waiting.count
        })
    }
}
