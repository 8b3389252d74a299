import PipelineKit

/// Step `dispatch`: sends the prepared request and keeps the `wamid` for `mark_completed`.
public struct DispatchStep: Step {
    public let client: any CloudAPISender

    public init(client: any CloudAPISender) {
        self.client = client
    }

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard let request = message.values[PreparedRequestKey.self] else {
            throw StepFailure(.permanent, "no request to send: the pipeline needs a `transform` step before `\(context.stepName)`")
        }
        message.values[DeliveryReceiptKey.self] = try await client.send(request, attempt: message.attempt, logger: context.logger)
        return .next
    }
}

extension StepPlugin {
    /// The `dispatch` step plugin.
    public static let dispatch = StepPlugin(
        name: "dispatch",
        summary: "sends the request to the WhatsApp Cloud API and keeps the wamid",
        settings: SettingsSchema([
            SettingSpec("client", .resource(uses: "whatsapp_cloud_api"), default: .string("whatsapp"), "the `whatsapp_cloud_api` resource to send through"),
        ]),
        defaultOnError: .retry,
        irreversible: true,
        make: { context in
            DispatchStep(client: try context.resources.get(try context.settings.string("client"), as: (any CloudAPISender).self))
        }
    )
}

extension ResourcePlugin {
    /// The `whatsapp_cloud_api` resource plugin.
    public static let whatsAppCloudAPI = ResourcePlugin(
        name: "whatsapp_cloud_api",
        summary: "WhatsApp Cloud API client (async-http-client, keep-alive pool)",
        settings: CloudAPISettings.schema,
        make: { context in try CloudAPIClient(settings: context.settings) }
    )
}
