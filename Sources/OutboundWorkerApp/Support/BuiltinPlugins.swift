import EventsPlugin
import IdempotencyPlugin
import PipelineKit
import RabbitMQPlugin
import RedisPlugin
import ValidatePlugin
import WebhookPlugin
import WhatsAppPlugin

/// The plugins this executable ships, registered by name.
public enum BuiltinPlugins {
    public static var registry: PluginRegistry {
        var registry = PluginRegistry()
        registry.register(SourcePlugin.rabbitMQ)
        registry.register(SourcePlugin.whatsAppWebhook)
        registry.register(SinkPlugin.rabbitMQEvents)
        registry.register(ResourcePlugin.redis)
        registry.register(ResourcePlugin.whatsAppCloudAPI)
        registry.register(StepPlugin.validate)
        registry.register(StepPlugin.idempotency)
        registry.register(StepPlugin.transform)
        registry.register(StepPlugin.dispatch)
        registry.register(StepPlugin.markCompleted)
        registry.register(StepPlugin.webhookChanges)
        registry.register(StepPlugin.correlateStatuses)
        registry.register(StepPlugin.orderStatuses)
        registry.register(StepPlugin.statusEvents)
        return registry
    }

    /// The same plugins with no I/O: Redis and the Cloud API replaced by in-memory stand-ins
    /// with the same settings, and a source that cannot be started (for `outbound-worker test`).
    public static func standInRegistry(store: MemoryStore, cloudAPI: StandInLog) -> PluginRegistry {
        var registry = self.registry
        let redis = ResourcePlugin.redis
        registry.register(ResourcePlugin(name: redis.name, summary: redis.summary, settings: redis.settings, check: redis.check) { _ in store })
        let whatsApp = ResourcePlugin.whatsAppCloudAPI
        registry.register(ResourcePlugin(name: whatsApp.name, summary: whatsApp.summary, settings: whatsApp.settings, check: whatsApp.check) { context in
            StandInCloudAPI(configuration: try CloudAPIConfiguration(settings: context.settings), slotStore: context.slotStore, clock: store.clock, log: cloudAPI)
        })
        for source in [SourcePlugin.rabbitMQ, .whatsAppWebhook] {
            registry.register(SourcePlugin(name: source.name, summary: source.summary, settings: source.settings, check: source.check, admission: source.admission) { _ in
                throw SettingsError(message: "pipeline tests run without a source")
            })
        }
        return registry
    }
}
