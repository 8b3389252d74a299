import Metrics
import PipelineKit
import RedisPlugin

/// Step `mark_completed`: rewrites the key as completed with the wamid, resets its TTL, and
/// maps the wamid to the internalId (as long) for statuses that come without the internalId.
///
/// The write checks that the key still holds this message's claim: if another worker took the
/// key over meanwhile (this one was stuck past its lease), the message was probably sent twice,
/// and that is logged and counted (`outbound_suspected_double_sends_total`), never silent.
/// It never re-sends: under `fail_closed` it retries the write until the store answers (or
/// the worker's drain ends); under `fail_open` it gives up at once, and the runtime logs and acknowledges.
public struct MarkCompletedStep: Step {
    public var store: any IdempotencyStore
    public var key: KeyTemplate
    public var ttl: Duration
    public var keepTrying: Bool

    public init(store: any IdempotencyStore, key: KeyTemplate, ttl: Duration, keepTrying: Bool) {
        self.store = store
        self.key = key
        self.ttl = ttl
        self.keepTrying = keepTrying
    }

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        let claim = message.values[IdempotencyClaimKey.self]
        let key = try claim?.key ?? renderKey(key, message)
        // Nil when the Cloud API accepted the request but its answer could not be read (SPEC 13).
        let wamid = message.values[DeliveryReceiptKey.self].flatMap { $0.isEmpty ? nil : $0 }
        let value = KeyState.completed(wamid: wamid, at: context.clock.now(), trace: message.trace?.recordedTraceparent).encoded()
        // A traced send keeps its traceparent with the mapping: its statuses continue its trace (a sampled one only).
        let mapping = wamid.map { (wamid: $0, send: MappedSend(internalID: message.internalID ?? "", traceparent: message.trace?.recordedTraceparent)) }
        var delay = Duration.milliseconds(100)
        while true {
            do {
                let completion = try await store.complete(key, claim: claim?.value, value: value, ttl: ttl, mapping: mapping)
                // Held here until written: a key left `processing` by a send whose completion failed is never this worker's orphan.
                if let claim { LocalClaims.shared.end(claim.key) }
                if case .claimLost(let current) = completion {
                    Counter.suspectedDoubleSends.increment()
                    context.logger.error("suspected double send: the idempotency key was taken over while this message was being sent",
                                         metadata: ["key": .string(key), "found_owner": .string(current.flatMap(KeyState.decode)?.owner ?? "none")])
                }
                return .next
            } catch {
                guard keepTrying, !Task.isCancelled else { throw StepFailure(.unavailable, "idempotency store: \(error.reason)") }
                context.logger.debug("completion not recorded yet; retrying", metadata: ["error": .string(error.reason)])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(1))
            }
        }
    }
}
