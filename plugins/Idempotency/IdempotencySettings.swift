import PipelineKit

/// The settings of the `idempotency` step, declared once; `mark_completed`, `status` and the
/// pipeline tests read an idempotency step's store and key through these.
public enum IdempotencySettings {
    public static let store = Setting.resource("store", uses: "redis", default: "redis", "the `redis` resource holding the keys")
    public static let key = Setting.keyTemplate("key", default: "idempotency:outbound:{internalId}", "key pattern; `{field}` takes a top-level string field")
    public static let ttl = Setting.duration("ttl", default: .seconds(86_400), "lifetime of a key, processing or completed")
    public static let lease = Setting.duration("lease", default: .seconds(120), "a processing key older than this is taken over (its owner is presumed dead)")
    static let onDuplicate = Setting.choice("on_duplicate", default: IdempotencyStep.DuplicatePolicy.ack, "what to do with a message whose key is completed")
    static let onInFlight = Setting.choice("on_in_flight", default: IdempotencyStep.InFlightPolicy.requeue, "what to do with a message whose key another worker is processing")

    static let schema = SettingsSchema(store, key, ttl, lease, onDuplicate, onInFlight)
}

/// The settings of the `mark_completed` step: those of its `of` step unless overridden.
enum MarkCompletedSettings {
    static let of = Setting.step("of", uses: "idempotency", default: "idempotency", "the idempotency step whose store, key and ttl apply")
    static let store = Setting.optionalResource("store", uses: "redis", "overrides the store of the `of` step")
    static let key = Setting.optionalKeyTemplate("key", "overrides the key of the `of` step")
    static let ttl = Setting.optionalDuration("ttl", "overrides the ttl of the `of` step")

    static let schema = SettingsSchema(of, store, key, ttl)
}
