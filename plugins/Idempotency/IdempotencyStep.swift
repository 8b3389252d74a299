import Foundation
import Metrics
import PipelineKit
import RedisPlugin

/// What the idempotency step claimed, for `undo` and `mark_completed`.
public struct IdempotencyClaim: Sendable, Equatable {
    public var key: String
    /// The exact value written: release deletes the key only while it still holds it.
    public var value: String
}

/// Where the idempotency step leaves its claim.
public enum IdempotencyClaimKey: MessageValueKey {
    public typealias Value = IdempotencyClaim
}

/// Step `idempotency`: claims `key` with `SET NX EX ttl` so each message is sent once.
///
/// Completed → `on_duplicate`; processing younger than `lease` → `on_in_flight`;
/// processing older than `lease` → taken over, in the same atomic script (the lease is
/// judged by the store's clock, so clock skew between workers cannot cause a takeover).
public struct IdempotencyStep: Step {
    public enum DuplicatePolicy: String, Sendable, CaseIterable { case ack, deadLetter = "dead_letter" }
    public enum InFlightPolicy: String, Sendable, CaseIterable { case requeue, ack }

    public var store: any IdempotencyStore
    public var key: KeyTemplate
    public var ttl: Duration
    public var lease: Duration
    public var onDuplicate: DuplicatePolicy
    public var onInFlight: InFlightPolicy
    /// How old this worker's own `processing` value must be, with no message of it holding the key, to
    /// be taken over (`LocalClaims`): longer than a send that went on without its claim can take.
    public var orphanAge: Duration
    /// The longest a send of the pipeline may take (its resource's `timeout`): a send must start this
    /// long before the lease runs out.
    public var sendTimeout: Duration

    public init(store: any IdempotencyStore, key: KeyTemplate, ttl: Duration, lease: Duration, onDuplicate: DuplicatePolicy, onInFlight: InFlightPolicy,
                orphanAge: Duration? = nil, sendTimeout: Duration? = nil) {
        self.store = store
        self.key = key
        self.ttl = ttl
        self.lease = lease
        self.onDuplicate = onDuplicate
        self.onInFlight = onInFlight
        self.orphanAge = min(lease, orphanAge ?? lease)
        self.sendTimeout = sendTimeout ?? .zero
        Counter.registerIdempotencySeries()
        InDoubtWaits.register()
    }

    /// `Message.carried` note of a message an attempt of which claimed its key, or may have (the claim
    /// went unanswered): the key may still hold that claim — its answer lost, or its release by `undo`
    /// failed — so on a retry `processing` is not taken for a copy in flight and `on_in_flight: ack`
    /// does not drop it (it waits, as under `requeue`, for the claim to be released or taken over).
    static let claimedNote = "claimed"

    /// Notes in what the message carries that this attempt claimed its key, or may have. Under
    /// `on_in_flight: ack` another delivery of the message that finds the claim is acknowledged as a
    /// copy in flight — the broker's redelivery of this one too, should its connection be lost — so
    /// what this run ends with is then published whatever becomes of its delivery
    /// (`Message.outlivesItsDelivery`). A delivery that carried the note already is never so dropped.
    func noteClaimed(_ message: inout Message) {
        if onInFlight == .ack, message.carried[Self.claimedNote] == nil { message.outlivesItsDelivery = true }
        message.carried[Self.claimedNote] = "1"
    }

    /// The claim is this message's until its lease runs out (then another worker's copy takes it
    /// over), and a send that starts must end before: the lease less the send's timeout.
    public var heldFor: Duration? { max(.zero, lease - sendTimeout) }

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        let key = try renderKey(key, message)
        // A claim of an earlier pass of this run that went unanswered stops counting before this one counts.
        message.values[UnansweredClaimKey.self] = nil
        InDoubtWaits.shared.touch()
        // A message whose own send is in doubt never takes a processing value over: that may be its own unmarked claim.
        let own = message.carried[Self.inDoubtNote] != nil
        var result: ClaimResult
        // This worker's `processing` value that no message here holds is an orphan — unless a
        // message here waits in doubt on it (its hold could not mark it yet).
        let alone = LocalClaims.shared.begin(key) && !InDoubtWaits.shared.isWaiting(key)
        do {
            result = try await store.claim(key, owner: context.workerID, ttl: ttl, lease: lease, takeOverOwnAfter: alone && !own ? orphanAge : nil, inDoubt: context.inDoubt,
                                       trace: message.trace?.recordedTraceparent)
        } catch {
            // The claim may have been made with its answer lost. It stays held while the message is
            // here (under fail_open it goes on without it, and may wait); once the message has gone,
            // nobody here holds the key: the next claim takes this worker's own `processing` value
            // over, and so that another worker's retry need not wait out the lease, the value is
            // released once a send without it would be over (`releaseLostClaims`).
            holdUnanswered(key, &message, context)
            // In doubt, never on without the key (fail_open would send it again blindly): look again later.
            if own {
                InDoubtWaits.shared.begin(key)
                return Self.lookAgain(key, in: .seconds(1), context)
            }
            throw StepFailure(.unavailable, "idempotency store: \(error.reason)")
        }
        switch result {
        case .claimed, .tookOver, .resending: noteClaimed(&message)
        case .completed, .inFlight, .inDoubt, .inDoubtExpired: LocalClaims.shared.end(key)
        }
        await markUnmarked(context)
        await releaseLostClaims(context)
        if case .inDoubtExpired(let existing) = result, Self.replayedAfter(existing, message) {
            // Dead-lettered in doubt, then replayed by an operator: that is the decision to send it again.
            noteClaimed(&message)
            result = try await claimAgain(key, &message, context)
        }
        if let outcome = try await resolveInDoubt(result, key: key, &message, context) { return outcome }
        switch result {
        case .claimed(let value):
            message.values[IdempotencyClaimKey.self] = IdempotencyClaim(key: key, value: value)
            return .next
        case .completed(let existing):
            Counter.duplicates.increment()
            let wamid = KeyState.decode(existing)?.wamid.flatMap { $0.isEmpty ? nil : $0 }
            message.values[DeliveryReceiptKey.self] = wamid
            switch onDuplicate {
            case .ack: return .finish(as: .duplicate, "duplicate: \(key) completed\(wamid.map { " as \($0)" } ?? "")")
            case .deadLetter: throw StepFailure(.permanent, "duplicate: \(key) already completed")
            }
        case .inFlight(let existing):
            let owner = KeyState.decode(existing)?.owner ?? "another worker"
            // After a claim of its own the value may be that very claim, not a copy in flight: never dropped.
            if onInFlight == .ack, message.carried[Self.claimedNote] == nil {
                return .finish(as: .duplicate, "in flight: \(key) is being processed by \(owner)")
            }
            return .requeue(after: nil, reason: "in flight: \(key) is being processed by \(owner)")
        case .tookOver(let value, let previous):
            Counter.takeovers.increment()
            context.logger.warning("took over an idempotency key whose lease had expired (by Redis's clock)", metadata: ["previous_owner": .string(KeyState.decode(previous)?.owner ?? "unknown")])
            message.values[IdempotencyClaimKey.self] = IdempotencyClaim(key: key, value: value)
            return .next
        case .inDoubt, .resending, .inDoubtExpired:
            // resolveInDoubt answers each of these; a requeue is the safe answer should it ever not.
            return .requeue(after: nil, reason: "in doubt: \(key)")
        }
    }

    /// The store answers again: releases this worker's lost claims that are old enough and that no
    /// message here holds (a claim of another message of this worker in between is held, or its
    /// value is no longer this worker's processing one: either way it is left alone). A key a
    /// message here waits on in doubt is not released: its value may be that send's unmarked claim.
    private func releaseLostClaims(_ context: StepContext) async {
        let owner = claimant(context)
        for key in LocalClaims.shared.dueLost(owner: owner) {
            if InDoubtWaits.shared.isWaiting(key) {
                LocalClaims.shared.settleLost(key, owner: owner, retryAfter: .seconds(1))
                continue
            }
            do {
                switch try await store.releaseOrphan(key, owner: context.workerID, olderThan: orphanAge) {
                case .released:
                    Counter.lostClaimsReleased.increment()
                    context.logger.notice("released this worker's claim whose answer was lost; another worker's retry can claim it", metadata: ["key": .string(key)])
                    LocalClaims.shared.settleLost(key, owner: owner)
                case .notOrphaned:
                    LocalClaims.shared.settleLost(key, owner: owner)
                case .tooYoung:
                    LocalClaims.shared.settleLost(key, owner: owner, retryAfter: .seconds(1))
                }
            } catch {
                LocalClaims.shared.settleLost(key, owner: owner, retryAfter: .seconds(1))
                return
            }
        }
    }

    /// Releases the key, only while it still holds this claim's value.
    public func undo(_ message: Message, _ context: StepContext) async {
        guard let claim = message.values[IdempotencyClaimKey.self] else { return }
        defer { LocalClaims.shared.end(claim.key) }
        do {
            if try await store.release(claim.key, claim: claim.value) == false {
                context.logger.notice("idempotency key not released: another worker owns it now")
            }
        } catch {
            // Released once the store answers again (`releaseLostClaims`), so that the retry need not wait out the lease.
            LocalClaims.shared.lost(claim.key, owner: claimant(context), releaseAfter: orphanAge)
            context.logger.warning("idempotency key not released; released once the store answers again", metadata: ["error": .string(error.reason)])
        }
    }
}

/// Renders a key template from the message's top-level string fields.
func renderKey(_ template: KeyTemplate, _ message: Message) throws(StepFailure) -> String {
    guard let key = template.render({ message.field($0) }) else {
        let missing = template.fields.filter { message.field($0) == nil }
        throw StepFailure(.invalid, "key \(template): the message has no string field \(missing.map { "`\($0)`" }.joined(separator: ", "))")
    }
    return key
}

extension StepValue {
    /// The idempotency key `idempotency` holds for the message.
    public static let claim = StepValue(IdempotencyClaimKey.self, "claim")
}
