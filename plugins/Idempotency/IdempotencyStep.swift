import Foundation
import Metrics
import PipelineKit

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
/// processing older than `lease` → taken over by compare-and-set.
public struct IdempotencyStep: Step {
    public enum DuplicatePolicy: String, Sendable { case ack, deadLetter = "dead_letter" }
    public enum InFlightPolicy: String, Sendable { case requeue, ack }

    public var store: any IdempotencyStore
    public var key: KeyTemplate
    public var ttl: Duration
    public var lease: Duration
    public var onDuplicate: DuplicatePolicy
    public var onInFlight: InFlightPolicy

    public init(store: any IdempotencyStore, key: KeyTemplate, ttl: Duration, lease: Duration, onDuplicate: DuplicatePolicy, onInFlight: InFlightPolicy) {
        self.store = store
        self.key = key
        self.ttl = ttl
        self.lease = lease
        self.onDuplicate = onDuplicate
        self.onInFlight = onInFlight
    }

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        let key = try renderKey(key, message)
        let now = context.clock.now()
        let value = KeyState.processing(owner: context.workerID, since: now).encoded()
        let existing: String?
        do {
            existing = try await store.setIfAbsent(key, value, ttl: ttl)
        } catch {
            throw StepFailure(.unavailable, "idempotency store: \(error.reason)")
        }
        guard let existing else {
            message.values[IdempotencyClaimKey.self] = IdempotencyClaim(key: key, value: value)
            return .next
        }
        let state = KeyState.decode(existing)
        if let state, state.isCompleted {
            Counter.duplicates.increment()
            switch onDuplicate {
            case .ack: return .finish("duplicate: \(key) completed\(state.wamid.map { " as \($0)" } ?? "")")
            case .deadLetter: throw StepFailure(.permanent, "duplicate: \(key) already completed")
            }
        }
        if let since = state?.sinceDate, now.timeIntervalSince(since) < lease.secondsDouble {
            switch onInFlight {
            case .requeue: return .requeue(after: nil, reason: "in flight: \(key) is being processed by \(state?.owner ?? "another worker")")
            case .ack: return .finish("in flight: \(key) is being processed by \(state?.owner ?? "another worker")")
            }
        }
        let tookOver: Bool
        do {
            tookOver = try await store.compareAndSet(key, expected: existing, new: value, ttl: ttl)
        } catch {
            throw StepFailure(.unavailable, "idempotency store: \(error.reason)")
        }
        guard tookOver else {
            return .requeue(after: nil, reason: "in flight: \(key) was just taken over by another worker")
        }
        context.logger.warning("took over an idempotency key whose lease had expired", metadata: ["previous_owner": .string(state?.owner ?? "unknown")])
        message.values[IdempotencyClaimKey.self] = IdempotencyClaim(key: key, value: value)
        return .next
    }

    /// Releases the key, only while it still holds this claim's value.
    public func undo(_ message: Message, _ context: StepContext) async {
        guard let claim = message.values[IdempotencyClaimKey.self] else { return }
        do {
            if try await store.deleteIfEqual(claim.key, expected: claim.value) == false {
                context.logger.notice("idempotency key not released: another worker owns it now")
            }
        } catch {
            context.logger.warning("idempotency key not released; it expires with its lease", metadata: ["error": .string(error.reason)])
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
