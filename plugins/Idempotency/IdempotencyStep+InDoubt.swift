import Foundation
import Metrics
import PipelineKit

/// Sends in doubt (SPEC 13): the send's request was written and its answer lost, so Meta may have
/// accepted it. The key becomes `in_doubt` and the message waits — never sent again blindly — until
/// a delivery status settles it (the statuses pipeline writes the key `completed`), or the window
/// ends and `InDoubtPolicy.decision` resends it or dead-letters it.
extension IdempotencyStep {
    /// `Message.carried` note of a message whose own send went in doubt: settled, it ends as sent
    /// (another copy of it ends as a duplicate).
    static let inDoubtNote = "in-doubt"
    /// `Message.carried` note beside `inDoubtNote`: the attempt whose send is in doubt (a copy that
    /// goes round the broker keeps the attempt it arrived with, not the one a resend counts).
    static let inDoubtAttemptNote = "in-doubt-attempt"

    /// The send after this step went in doubt: the key becomes `in_doubt` (unless a status settled it
    /// first), and this step runs again to wait for the outcome. Nothing is given back: the claim
    /// leaves the message, so no `undo` can release the key of a message that may have been sent.
    /// The note it leaves (`inDoubtNote`) holds the claim's value, so the next run can still mark that
    /// claim — and only that one — if the store could not be written now.
    public func holdInDoubt(_ message: inout Message, _ context: StepContext) async -> Bool {
        let claim = message.values[IdempotencyClaimKey.self]
        guard let key = claim?.key ?? (try? renderKey(key, message)) else { return false }
        // Without a claim (skipped under fail_open) the key is marked when absent; another's value stays.
        let claimValue = claim?.value ?? ""
        message.values[IdempotencyClaimKey.self] = nil
        if claim != nil { LocalClaims.shared.end(key) }
        var held = claimValue
        if case .other(let current) = await mark(key, claim: claimValue, &message, context), claim == nil {
            // Skipped under fail_open because the store answered too late, the claim may still have
            // landed: this worker's own `processing` value is then this send's claim. Anything else
            // is another's, left alone.
            guard let state = KeyState.decode(current), state.status == "processing", state.owner == context.workerID else { return false }
            await mark(key, claim: current, &message, context)
            held = current
        }
        Self.noteInDoubt(&message, claim: held)
        InDoubtWaits.shared.begin(key)
        return true
    }

    /// Rewrites the key `in_doubt`; nil when the store is unavailable (the key then stays as it was,
    /// and the next run marks it: `resolveInDoubt`, `.inFlight`).
    @discardableResult
    private func mark(_ key: String, claim: String, _ message: inout Message, _ context: StepContext) async -> InDoubtMark? {
        do {
            let mark = try await store.markInDoubt(key, claim: claim, owner: context.workerID, attempt: message.attempt, ttl: ttl, trace: message.trace?.recordedTraceparent)
            InDoubtWaits.shared.marked(key)
            if case .other(let current) = mark {
                context.logger.warning("send in doubt, and its key holds another value: left as it is", metadata: ["found": .string(KeyState.decode(current)?.status ?? "unreadable")])
            }
            return mark
        } catch {
            InDoubtWaits.shared.notMarked(key, in: storeIdentity, claim: claim, owner: context.workerID, attempt: message.attempt, trace: message.trace?.recordedTraceparent)
            context.logger.warning("send in doubt, not recorded yet (the store is unavailable): marked on the next look", metadata: ["error": .string(error.reason)])
            return nil
        }
    }

    /// The store answers again: marks `in_doubt` the keys of this worker's sends in doubt that could
    /// not be marked then, without waiting for their messages' next look — by then another worker's
    /// copy could take the `processing` value over once its lease is past.
    func markUnmarked(_ context: StepContext) async {
        for (key, pending) in InDoubtWaits.shared.unmarked(in: storeIdentity, owner: context.workerID) {
            do {
                _ = try await store.markInDoubt(key, claim: pending.claim, owner: pending.owner, attempt: pending.attempt, ttl: ttl, trace: pending.trace)
                InDoubtWaits.shared.marked(key)
            } catch {
                return
            }
        }
    }

    /// Notes in what the message carries that its send of this attempt is in doubt, on `claim`
    /// (the claim's value; "" when it has none it knows).
    static func noteInDoubt(_ message: inout Message, claim: String) {
        message.carried[inDoubtNote] = claim.isEmpty ? "1" : claim
        message.carried[inDoubtAttemptNote] = String(message.attempt)
    }

    /// The message's send is in doubt no more (settled, or sent again).
    static func forgetInDoubt(_ message: inout Message) {
        message.carried[inDoubtNote] = nil
        message.carried[inDoubtAttemptNote] = nil
    }

    /// The key that says which delivery reported how the send in doubt of `attempt` on `key` ended
    /// (`SET NX`, as long as the key): written only when one is settled or resent, never per message.
    static func reportKey(_ key: String, attempt: Int) -> String {
        "\(key):in-doubt-reported:\(attempt)"
    }

    /// Which store this step's keys are in, for what `InDoubtWaits` keeps.
    var storeIdentity: ObjectIdentifier { ObjectIdentifier(store as AnyObject) }

    /// This worker's claims in this step's store (`LocalClaims`' lost claims).
    func claimant(_ context: StepContext) -> LocalClaims.Claimant {
        LocalClaims.Claimant(worker: context.workerID, store: storeIdentity)
    }

    /// A claim of `key` that went unanswered (it may stand in the store): held while the message is
    /// here (`UnansweredClaim`), released once it has gone and the store answers (`releaseLostClaims`),
    /// and noted in what the message carries (`claimedNote`).
    func holdUnanswered(_ key: String, _ message: inout Message, _ context: StepContext) {
        message.values[UnansweredClaimKey.self] = UnansweredClaim(holding: key)
        LocalClaims.shared.lost(key, owner: claimant(context), releaseAfter: orphanAge)
        noteClaimed(&message)
    }

    /// Claims a key left in doubt past its window for a resend, whatever the pipeline's `on_in_doubt`.
    func claimAgain(_ key: String, _ message: inout Message, _ context: StepContext) async throws -> ClaimResult {
        _ = LocalClaims.shared.begin(key)
        do {
            let result = try await store.claim(key, owner: context.workerID, ttl: ttl, lease: lease, takeOverOwnAfter: nil, inDoubt: InDoubtPolicy(window: .zero, decision: .resend),
                                               trace: message.trace?.recordedTraceparent)
            if case .resending = result {} else { LocalClaims.shared.end(key) }
            return result
        } catch {
            holdUnanswered(key, &message, context)
            throw StepFailure(.unavailable, "idempotency store: \(error.reason)")
        }
    }

    /// Whether an operator replayed the message after its send went in doubt (a note older than the
    /// doubt is from an earlier replay, and decides nothing now).
    static func replayedAfter(_ existing: String, _ message: Message) -> Bool {
        guard let replayed = message.carried[ReplayNote.carriedKey].flatMap(KeyState.date) else { return false }
        guard let since = KeyState.decode(existing)?.sinceDate else { return true }
        return replayed > since
    }

    /// Waits `delay` (at least a second) before this step looks at the key again — in memory while
    /// parking has room, however long the delay (a look every `max_park` at most: one Redis call), so
    /// the wait shows in `outbound_messages_waiting{reason="in_doubt"}` (SPEC 13) for the whole window
    /// and costs no broker round trip.
    static func lookAgain(_ key: String, in delay: Duration, _ context: StepContext) -> StepOutcome {
        let delay = max(delay, .seconds(1))
        return .wait(Wait(key: "in_doubt:\(key)", until: context.clock.now().addingTimeInterval(delay.secondsDouble), reason: .inDoubt, looksAgainAfter: delay))
    }

    /// What the claim found, when it concerns a send in doubt (this message's own, or another copy's);
    /// nil to go on as usual.
    func resolveInDoubt(_ result: ClaimResult, key: String, _ message: inout Message, _ context: StepContext) async throws -> StepOutcome? {
        let note = message.carried[Self.inDoubtNote]
        switch result {
        case .inDoubt(let existing, let remaining):
            let state = KeyState.decode(existing)
            // Redelivered after its worker stopped (the same delivery as the one whose send is in doubt): it ends as that send would have.
            if note == nil, state?.attempt == message.attempt { Self.noteInDoubt(&message, claim: "") }
            InDoubtWaits.shared.begin(key)
            let age = context.inDoubt.window - remaining
            return Self.lookAgain(key, in: min(remaining, min(max(age / 4, .seconds(1)), .seconds(30))), context)
        case .completed(let existing) where note != nil:
            // One delivery of the message reports the settlement as sent; another that holds the
            // note too — the original redelivered beside its waiting copy, a second publish — ends
            // as a duplicate with the wamid (SPEC 9: consumers treat it as sent), not a second `sent`.
            let attempt = message.carried[Self.inDoubtAttemptNote].flatMap { Int($0) } ?? message.attempt
            let reports: Bool
            do {
                reports = try await store.setIfAbsent(Self.reportKey(key, attempt: attempt), context.workerID, ttl: ttl)
            } catch {
                InDoubtWaits.shared.begin(key)
                return Self.lookAgain(key, in: .seconds(1), context)
            }
            Self.forgetInDoubt(&message)
            let wamid = KeyState.decode(existing)?.wamid.flatMap { $0.isEmpty ? nil : $0 }
            message.values[DeliveryReceiptKey.self] = wamid
            guard reports else {
                // Sent: never dead-lettered as a duplicate, whatever `on_duplicate` says.
                InDoubtWaits.shared.stopWaiting(key)
                Counter.duplicates.increment()
                return .finish(as: .duplicate, "duplicate: \(key) settled in doubt\(wamid.map { " as \($0)" } ?? ""), reported sent by another delivery of the message")
            }
            message.report("resolvedBy", .string("status"))
            InDoubtWaits.shared.end(key, resolution: "status")
            return .alreadySent("in doubt, settled by a status\(wamid.map { " as \($0)" } ?? "")")
        case .resending(let value, let previous):
            // (A stored count is input: kept within what a delivery can report, so `+ 1` cannot overflow.)
            let attempt = Delivery.attempts(clamping: KeyState.decode(previous)?.attempt ?? message.attempt)
            // What the resend ends with is the report of that attempt: another delivery waiting on it
            // (which finds the resend's completion) ends as a duplicate.
            _ = try? await store.setIfAbsent(Self.reportKey(key, attempt: attempt), context.workerID, ttl: ttl)
            context.logger.warning("send in doubt and no status within the window: sending it again", metadata: ["window": .string(DurationParser.format(context.inDoubt.window)), "attempt": "\(attempt + 1)"])
            message.attempt = attempt + 1
            Self.forgetInDoubt(&message)
            message.values[IdempotencyClaimKey.self] = IdempotencyClaim(key: key, value: value)
            InDoubtWaits.shared.end(key, resolution: "resent")
            return .next
        case .inDoubtExpired(let existing):
            let since = KeyState.decode(existing)?.since ?? "unknown"
            InDoubtWaits.shared.end(key, resolution: "dead_letter")
            throw StepFailure(.permanent, "in doubt: no status within \(DurationParser.format(context.inDoubt.window)) of the send at \(since); not sent again (on_in_doubt: dead_letter): replay sends it again",
                              symbolicCode: "in_doubt")
        case .inFlight(let existing) where note != nil && note == existing:
            // Its send went in doubt while the store was unavailable: its own claim, marked now, then waited for.
            InDoubtWaits.shared.begin(key)
            await mark(key, claim: existing, &message, context)
            return Self.lookAgain(key, in: .seconds(1), context)
        case .claimed(let value) where note != nil, .tookOver(let value, _) where note != nil:
            // Its key vanished (its TTL, an eviction) while its send was in doubt: held again, not sent blindly.
            LocalClaims.shared.end(key)
            await mark(key, claim: value, &message, context)
            return Self.lookAgain(key, in: .seconds(1), context)
        case .claimed, .completed, .inFlight, .tookOver:
            return nil
        }
    }
}
