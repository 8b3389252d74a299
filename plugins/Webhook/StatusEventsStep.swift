import PipelineKit

/// Step `status_events`: the events of the batch (`delivery.<status>`, `webhook.<field>`), for the sink.
struct StatusEventsStep: Step {
    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        message.values[PreparedEventsKey.self] = message.values[WebhookBatchKey.self]?.events ?? []
        return .next
    }
}

extension StepPlugin {
    /// The `status_events` step plugin.
    public static let statusEvents = StepPlugin(
        name: "status_events", summary: "turns the batch into delivery.<status> and webhook.<field> events for the events sink",
        settings: SettingsSchema([]), requires: [.webhookBatch],
        make: { _ in StatusEventsStep() })
}
