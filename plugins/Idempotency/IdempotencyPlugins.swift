import PipelineKit
import RedisPlugin

extension StepPlugin {
    /// The `idempotency` step plugin.
    public static let idempotency = StepPlugin(
        name: "idempotency",
        summary: "claims a key per message with SET NX EX so each message is sent once",
        settings: IdempotencySettings.schema,
        defaultOnError: .deadLetter,
        defaultDegradation: .failClosed,
        provides: [.claim],
        check: IdempotencyRules.check,
        make: { context in
            let settings = context.settings
            return IdempotencyStep(
                store: try context.resources.get(settings[IdempotencySettings.store], as: (any IdempotencyStore).self),
                key: settings[IdempotencySettings.key],
                ttl: settings[IdempotencySettings.ttl],
                lease: settings[IdempotencySettings.lease],
                onDuplicate: settings[IdempotencySettings.onDuplicate],
                onInFlight: settings[IdempotencySettings.onInFlight],
                orphanAge: context.pipeline.slowestCall.map { $0.timeout + .seconds(1) },
                sendTimeout: context.pipeline.slowestCall?.timeout)
        }
    )

    /// The `mark_completed` step plugin.
    public static let markCompleted = StepPlugin(
        name: "mark_completed",
        summary: "rewrites the idempotency key as completed with the wamid and resets its TTL",
        settings: MarkCompletedSettings.schema,
        defaultOnError: .deadLetter,
        defaultDegradation: .failClosed,
        requires: [.receipt],
        make: { context in
            let own = context.settings
            guard let of = context.pipeline.step(named: own[MarkCompletedSettings.of]) else {
                throw SettingsError(message: "no idempotency step named `\(own[MarkCompletedSettings.of])`")
            }
            return MarkCompletedStep(
                store: try context.resources.get(own[MarkCompletedSettings.store] ?? of.settings[IdempotencySettings.store], as: (any IdempotencyStore).self),
                key: own[MarkCompletedSettings.key] ?? of.settings[IdempotencySettings.key],
                ttl: own[MarkCompletedSettings.ttl] ?? of.settings[IdempotencySettings.ttl],
                keepTrying: context.definition.degradation == .failClosed)
        }
    )
}

/// Rules across fields for the idempotency step (run by `check`).
enum IdempotencyRules {
    static func check(_ step: StepDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        let settings = step.settings
        let owner = "step `\(step.name)`"
        let key = settings[IdempotencySettings.key], ttl = settings[IdempotencySettings.ttl], lease = settings[IdempotencySettings.lease]
        let keyAt = settings.location(of: IdempotencySettings.key) ?? step.location
        let ttlAt = settings.location(of: IdempotencySettings.ttl) ?? step.location
        let leaseAt = settings.location(of: IdempotencySettings.lease) ?? step.location
        if !key.fields.contains("internalId") {
            diagnostics.append(.warning(at: keyAt, "\(owner): key \"\(key)\" has no {internalId}: distinct messages may share a key and be skipped as duplicates"))
        }
        if let slowest = pipeline.slowestCall, lease <= slowest.timeout {
            diagnostics.append(.error(at: leaseAt, "\(owner): lease \(DurationParser.format(lease)) must exceed the timeout of resource `\(slowest.resource)` (\(DurationParser.format(slowest.timeout))), or a slow send is taken over and sent twice"))
        }
        let park = pipeline.worker.maxPark
        if lease <= park {
            diagnostics.append(.error(at: leaseAt, "\(owner): lease \(DurationParser.format(lease)) must exceed the source's max_park (\(DurationParser.format(park))), or a message waiting in memory that long could be taken over and sent twice"))
        }
        if ttl <= lease {
            diagnostics.append(.error(at: ttlAt, "\(owner): ttl \(DurationParser.format(ttl)) must exceed lease \(DurationParser.format(lease))"))
        }
        if let inDoubt = pipeline.inDoubt, ttl <= inDoubt.policy.window {
            diagnostics.append(.warning(at: ttlAt, "\(owner): ttl \(DurationParser.format(ttl)) does not exceed the in_doubt_window of step `\(inDoubt.step)` (\(DurationParser.format(inDoubt.policy.window))): a key in doubt can expire while its message waits (the message then holds it again and waits a new window)"))
        }
        let retries = pipeline.retry.totalDelay
        if ttl <= retries {
            diagnostics.append(.error(at: ttlAt, "\(owner): ttl \(DurationParser.format(ttl)) must exceed the sum of all backoff delays (\(DurationParser.format(retries))), or a retried message can be sent twice"))
        }
        return diagnostics
    }
}
