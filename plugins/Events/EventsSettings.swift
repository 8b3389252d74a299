import AMQPClient
import PipelineKit
import RabbitMQPlugin

/// The settings of the `rabbitmq_events` sink (`events:` in a pipeline), read once.
struct EventsSettings: Sendable {
    static let statuses = ["sent", "duplicate", "failed", "expired"]

    static let schema = SettingsSchema([
        SettingSpec("url", .urlList, default: .string("amqp://guest:guest@localhost:5672/%2F"), secrecy: .urlPassword, "broker URL (or a list tried in turn) the events are published to"),
        BrokerConnection.tlsSetting,
        SettingSpec("exchange", .string, default: .string("whatsapp.outbound.events"), "durable topic exchange of the events; routing keys outbound.<status>, delivery.<status>, webhook.<field>"),
        SettingSpec("statuses", .choiceList(statuses), default: .list(statuses.map { .string($0) }), "which final outcomes are published"),
        SettingSpec("include_retries", .boolean, default: .boolean(false), "also publish outbound.retrying for each retry that uses an attempt"),
    ])

    var urls: [AMQPURL]
    var exchange: String
    var statuses: Set<String>
    var includeRetries: Bool

    init(_ settings: Settings) throws {
        urls = try BrokerConnection.urls(settings)
        exchange = try settings.string("exchange")
        statuses = Set(try settings.strings("statuses"))
        includeRetries = try settings.boolean("include_retries")
    }
}
