import PipelineKit

extension StepPlugin {
    /// The `dispatch` step plugin.
    public static let dispatch = StepPlugin(
        name: "dispatch",
        summary: "sends the request to the WhatsApp Cloud API at each sender's pace and keeps the wamid",
        settings: DispatchSettings.schema,
        defaultOnError: .retry,
        irreversible: true,
        provides: [.receipt],
        requires: [.request],
        inDoubtPolicy: DispatchSettings.inDoubtPolicy,
        check: DispatchRules.check,
        make: { context in
            DispatchStep(client: try context.resources.get(context.settings[DispatchSettings.client], as: (any CloudAPISender).self),
                         limits: DispatchSettings.limits(context), inDoubt: DispatchSettings.inDoubtPolicy(context.settings),
                         holdStore: context.settings[DispatchSettings.store].flatMap { context.resources.optional($0, as: (any HoldStore).self) })
        }
    )
}

/// The settings of the `dispatch` step (`outbound-worker limits` reads its store and client).
public enum DispatchSettings {
    public static let client = Setting.resource("client", uses: "whatsapp_cloud_api", default: "whatsapp", "the `whatsapp_cloud_api` resource to send through")
    static let inDoubtWindow = Setting.duration("in_doubt_window", default: InDoubtPolicy.standard.window,
                                                "how long a send whose answer was lost waits for a status to settle it (SPEC 13)")
    static let onInDoubt = Setting.choice("on_in_doubt", default: InDoubtPolicy.standard.decision,
                                          "after the window without a status: send once more, or dead-letter (never a second copy)")

    public static let store = Setting.optionalResource("store", uses: "redis", default: "redis",
                                                "the Redis resource where every worker shares paused and disabled templates (with the statuses pipeline), the portfolios' messaging limits, and pair and marketing holds (none: template states and holds stay per worker, limits are not counted)")
    static let marketingRetryAfter = Setting.duration("marketing_retry_after", default: .seconds(86_400),
                                                      "how long a marketing message Meta declined for the user's marketing limit (131049) waits before it goes once more")

    static let schema = SettingsSchema(client, inDoubtWindow, onInDoubt, store, marketingRetryAfter)

    static func limits(_ context: StepBuildContext) -> AccountLimits {
        let name = context.settings[store]
        let values = name.flatMap { context.resources.optional($0, as: (any KeyValueStore).self) }
        return AccountLimits(templates: TemplateStates(store: values),
                             messaging: MessagingLimits(store: name.flatMap { context.resources.optional($0, as: (any MessagingLimitStore).self) },
                                                        announced: AnnouncedLimits(store: values)),
                             marketingRetryAfter: context.settings[marketingRetryAfter])
    }

    @Sendable static func inDoubtPolicy(_ settings: Settings) -> InDoubtPolicy {
        InDoubtPolicy(window: settings[inDoubtWindow], decision: settings[onInDoubt])
    }
}

/// Rules across the dispatch step and the source (run by `check`).
enum DispatchRules {
    static func check(_ step: StepDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
        let client = step.settings[DispatchSettings.client]
        guard let timeout = pipeline.callTimeouts[client] else { return [] }
        let drain = pipeline.worker.drainTimeout
        guard drain <= timeout else { return [] }
        let location = pipeline.source.settings.location(of: WorkerConfiguration.drainTimeoutSetting) ?? pipeline.source.location
        return [.warning(at: location, "`drain_timeout` (\(DurationParser.format(drain))) does not exceed the timeout of resource `\(client)` (\(DurationParser.format(timeout))): on SIGTERM a send in progress is waited for anyway, so shutdown can take longer than the drain timeout")]
    }
}
