import IdempotencyPlugin
import PipelineKit
import RabbitMQPlugin
import ValidatePlugin
import WhatsAppPlugin

/// The plugins this executable ships, registered by name.
public enum BuiltinPlugins {
    public static var registry: PluginRegistry {
        var registry = PluginRegistry()
        registry.register(SourcePlugin.rabbitMQ)
        registry.register(ResourcePlugin.redis)
        registry.register(ResourcePlugin.whatsAppCloudAPI)
        registry.register(StepPlugin.validate)
        registry.register(StepPlugin.idempotency)
        registry.register(StepPlugin.transform)
        registry.register(StepPlugin.dispatch)
        registry.register(StepPlugin.markCompleted)
        return registry
    }

    /// The same plugins with no I/O: Redis and the Cloud API replaced by in-memory stand-ins
    /// with the same settings, and a source that cannot be started (for `outbound-worker test`).
    public static func standInRegistry(store: MemoryIdempotencyStore, cloudAPI: StandInCloudAPI) -> PluginRegistry {
        var registry = self.registry
        registry.register(ResourcePlugin(name: "redis", summary: ResourcePlugin.redis.summary, settings: ResourcePlugin.redis.settings) { _ in store })
        registry.register(ResourcePlugin(name: "whatsapp_cloud_api", summary: ResourcePlugin.whatsAppCloudAPI.summary, settings: ResourcePlugin.whatsAppCloudAPI.settings) { context in
            cloudAPI.setTimeout(try context.settings.duration("timeout"))
            return cloudAPI
        })
        registry.register(SourcePlugin(name: "rabbitmq", summary: SourcePlugin.rabbitMQ.summary, settings: SourcePlugin.rabbitMQ.settings) { _ in
            throw SettingsError(message: "pipeline tests run without a source")
        })
        return registry
    }
}
