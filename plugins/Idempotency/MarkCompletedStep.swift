import PipelineKit

/// Step `mark_completed`: rewrites the key as completed with the wamid and resets its TTL.
///
/// It never re-sends: under `fail_closed` it retries the write until the store answers
/// (or the worker shuts down); under `fail_open` it gives up at once, and the runtime logs and acknowledges.
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
        let key = try message.values[IdempotencyClaimKey.self]?.key ?? renderKey(key, message)
        let value = KeyState.completed(wamid: message.values[DeliveryReceiptKey.self] ?? "", at: context.clock.now()).encoded()
        var delay = Duration.milliseconds(100)
        while true {
            do {
                try await store.set(key, value, ttl: ttl)
                return .next
            } catch {
                guard keepTrying, !Task.isCancelled else { throw StepFailure(.unavailable, "idempotency store: \(error.reason)") }
                context.logger.debug("completion not recorded yet; retrying", metadata: ["error": .string(error.reason)])
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, .seconds(5))
            }
        }
    }
}
