import PipelineKit

/// Step `webhook_changes`: parses the webhook body into statuses and other changes.
struct WebhookChangesStep: Step {
    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard let payload = message.payload, payload.objectValue != nil else {
            throw StepFailure(.invalid, message.parseError ?? "a webhook body must be a JSON object")
        }
        message.values[WebhookBatchKey.self] = WebhookBatch(payload, receivedAt: context.clock.now())
        return .next
    }
}

extension StepPlugin {
    /// The `webhook_changes` step plugin.
    public static let webhookChanges = StepPlugin(
        name: "webhook_changes", summary: "parses a WhatsApp webhook body into statuses and other changes (status items without id or status are dropped and counted)",
        settings: SettingsSchema([]), defaultOnError: .deadLetter, provides: [.webhookBatch],
        make: { _ in WebhookChangesStep() })
}
