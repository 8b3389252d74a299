import PipelineKit
import RedisPlugin

extension StepPlugin {
    /// The `idempotency` step plugin.
    public static let idempotency = StepPlugin(
        name: "idempotency",
        summary: "claims a key per message with SET NX EX so each message is sent once",
        settings: SettingsSchema([
            SettingSpec("store", .resource(uses: "redis"), default: .string("redis"), "the `redis` resource holding the keys"),
            SettingSpec("key", .keyTemplate, default: .string("idempotency:outbound:{internalId}"), "key pattern; `{field}` takes a top-level string field"),
            SettingSpec("ttl", .duration, default: .duration(.seconds(86_400)), "lifetime of a key, processing or completed"),
            SettingSpec("lease", .duration, default: .duration(.seconds(120)), "a processing key older than this is taken over (its owner is presumed dead)"),
            SettingSpec("on_duplicate", .choice(["ack", "dead_letter"]), default: .string("ack"), "what to do with a message whose key is completed"),
            SettingSpec("on_in_flight", .choice(["requeue", "ack"]), default: .string("requeue"), "what to do with a message whose key another worker is processing"),
        ]),
        defaultOnError: .deadLetter,
        defaultDegradation: .failClosed,
        provides: ["claim"],
        check: IdempotencyRules.check,
        make: { context in
            let settings = context.settings
            return IdempotencyStep(
                store: try context.resources.get(try settings.string("store"), as: (any IdempotencyStore).self),
                key: try settings.keyTemplate("key"),
                ttl: try settings.duration("ttl"),
                lease: try settings.duration("lease"),
                onDuplicate: IdempotencyStep.DuplicatePolicy(rawValue: try settings.string("on_duplicate")) ?? .ack,
                onInFlight: IdempotencyStep.InFlightPolicy(rawValue: try settings.string("on_in_flight")) ?? .requeue,
                orphanAge: IdempotencyRules.slowestTimeout(in: context.pipeline).map { $0.1 + .seconds(1) })
        }
    )

    /// The `mark_completed` step plugin.
    public static let markCompleted = StepPlugin(
        name: "mark_completed",
        summary: "rewrites the idempotency key as completed with the wamid and resets its TTL",
        settings: SettingsSchema([
            SettingSpec("of", .step(uses: "idempotency"), default: .string("idempotency"), "the idempotency step whose store, key and ttl apply"),
            SettingSpec("store", .resource(uses: "redis"), "overrides the store of the `of` step"),
            SettingSpec("key", .keyTemplate, "overrides the key of the `of` step"),
            SettingSpec("ttl", .duration, "overrides the ttl of the `of` step"),
        ]),
        defaultOnError: .deadLetter,
        defaultDegradation: .failClosed,
        requires: ["receipt"],
        make: { context in
            let own = context.settings
            guard let of = context.pipeline.step(named: try own.string("of")) else {
                throw SettingsError(message: "no idempotency step named `\(try own.string("of"))`")
            }
            let store = try own.optionalString("store") ?? of.settings.string("store")
            let key = own["key"] != nil ? try own.keyTemplate("key") : try of.settings.keyTemplate("key")
            let ttl = own["ttl"] != nil ? try own.duration("ttl") : try of.settings.duration("ttl")
            return MarkCompletedStep(
                store: try context.resources.get(store, as: (any IdempotencyStore).self),
                key: key, ttl: ttl, keepTrying: context.definition.degradation == .failClosed)
        }
    )
}

/// Rules across fields for the idempotency step (run by `check`).
enum IdempotencyRules {
    /// The resource with the longest `timeout` (a send takes at most that long).
    static func slowestTimeout(in pipeline: PipelineDefinition) -> (String, Duration)? {
        pipeline.resources.compactMap { resource -> (String, Duration)? in
            guard case .duration(let timeout)? = resource.settings["timeout"]?.value else { return nil }
            return (resource.name, timeout)
        }.max { $0.1 < $1.1 }
    }

    static func check(_ step: StepDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        let settings = step.settings
        let owner = "step `\(step.name)`"
        if let key = try? settings.keyTemplate("key"), !key.fields.contains("internalId") {
            diagnostics.append(.warning(at: settings["key"]?.location ?? step.location, "\(owner): key \"\(key)\" has no {internalId}: distinct messages may share a key and be skipped as duplicates"))
        }
        guard let ttl = try? settings.duration("ttl"), let lease = try? settings.duration("lease") else { return diagnostics }
        if let slowest = slowestTimeout(in: pipeline), lease <= slowest.1 {
            diagnostics.append(.error(at: settings["lease"]?.location ?? step.location, "\(owner): lease \(DurationParser.format(lease)) must exceed the timeout of resource `\(slowest.0)` (\(DurationParser.format(slowest.1))), or a slow send is taken over and sent twice"))
        }
        let park = pipeline.worker.maxPark
        if lease <= park {
            diagnostics.append(.error(at: settings["lease"]?.location ?? step.location, "\(owner): lease \(DurationParser.format(lease)) must exceed the source's max_park (\(DurationParser.format(park))), or a message waiting in memory that long could be taken over and sent twice"))
        }
        if ttl <= lease {
            diagnostics.append(.error(at: settings["ttl"]?.location ?? step.location, "\(owner): ttl \(DurationParser.format(ttl)) must exceed lease \(DurationParser.format(lease))"))
        }
        for dispatch in pipeline.steps where dispatch.uses == "dispatch" {
            guard case .duration(let window)? = dispatch.settings["in_doubt_window"]?.value else { continue }
            if ttl <= window {
                diagnostics.append(.warning(at: settings["ttl"]?.location ?? step.location, "\(owner): ttl \(DurationParser.format(ttl)) does not exceed the in_doubt_window of step `\(dispatch.name)` (\(DurationParser.format(window))): a key in doubt can expire while its message waits (the message then holds it again and waits a new window)"))
            }
        }
        let retries = pipeline.retry.totalDelay
        if ttl <= retries {
            diagnostics.append(.error(at: settings["ttl"]?.location ?? step.location, "\(owner): ttl \(DurationParser.format(ttl)) must exceed the sum of all backoff delays (\(DurationParser.format(retries))), or a retried message can be sent twice"))
        }
        return diagnostics
    }
}
