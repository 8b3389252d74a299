import PipelineKit

extension ResourcePlugin {
    /// The `whatsapp_cloud_api` resource plugin.
    public static let whatsAppCloudAPI = ResourcePlugin(
        name: "whatsapp_cloud_api",
        summary: "WhatsApp Cloud API client (async-http-client, keep-alive pool), paced per sender",
        settings: CloudAPISettings.schema,
        callTimeout: CloudAPISettings.timeout,
        check: CloudAPISettings.check,
        make: { context in try CloudAPIClient(settings: context.settings, slotStore: context.slotStore) }
    )
}

extension ResourceBuildContext {
    /// The `throughput_store` resource, when it names one that shares send slots.
    public var slotStore: (any SlotStore)? {
        settings[CloudAPISettings.throughputStore].flatMap { resources.optional($0, as: (any SlotStore).self) }
    }
}
