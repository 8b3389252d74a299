import AccountLimitsPlugin
import EventsPlugin
import IdempotencyPlugin
import PipelineKit
import RabbitMQPlugin
import RedisPlugin
import SuppressPlugin
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
        registry.register(StepPlugin.suppress)
        registry.register(StepPlugin.accountUpdates)
        registry.register(StepPlugin.optOutKeywords)
        return registry
    }

    /// What a real run takes from the environment and the stand-ins need no real value of: the
    /// Cloud API's token and default sender, the webhook's verify token and app secret (nothing
    /// leaves the process). `outbound-worker test` uses them for the ones neither the environment
    /// nor the test file's `environment` sets, so SPEC 7's example runs as written.
    public static let standInEnvironment = [
        "WHATSAPP_ACCESS_TOKEN": "test-token",
        "WHATSAPP_PHONE_NUMBER_ID": "100200300",
        "WHATSAPP_VERIFY_TOKEN": "test-verify-token",
        "WHATSAPP_APP_SECRET": "test-app-secret",
    ]

    /// The same plugins with no I/O: Redis and the Cloud API replaced by in-memory stand-ins
    /// with the same settings, and a source that cannot be started (for `outbound-worker test`).
    public static func standInRegistry(store: MemoryStore, cloudAPI: StandInLog) -> PluginRegistry {
        var registry = self.registry
        var redis = ResourcePlugin.redis
        redis.make = { _ in store }
        registry.register(redis)
        var whatsApp = ResourcePlugin.whatsAppCloudAPI
        whatsApp.make = { context in
            StandInCloudAPI(configuration: CloudAPIConfiguration(settings: context.settings), slotStore: context.slotStore, clock: store.clock, log: cloudAPI)
        }
        registry.register(whatsApp)
        for var source in [SourcePlugin.rabbitMQ, .whatsAppWebhook] {
            source.make = { _ in throw SettingsError(message: "pipeline tests run without a source") }
            registry.register(source)
        }
        return registry
    }
}
