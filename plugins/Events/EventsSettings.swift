import AMQPClient
import PipelineKit
import RabbitMQPlugin

/// The settings of the `rabbitmq_events` sink (`events:` in a pipeline), read once.
public struct EventsSettings: Sendable {
    static let statuses = ["sent", "duplicate", "failed", "expired"]

    static let url = BrokerConnection.url("broker URL (or a list tried in turn) the events are published to")
    /// The topic exchange the events go to; by default `OUTBOUND_EVENTS_EXCHANGE` (SPEC 9).
    public static let exchangeName = Setting.string("exchange", default: "whatsapp.outbound.events",
                                                    "durable topic exchange of the events; routing keys outbound.<status>, delivery.<status>, webhook.<field>")
        .orEnvironment("OUTBOUND_EVENTS_EXCHANGE")
    static let publishedStatuses = Setting.words("statuses", from: statuses, default: statuses,
                                                   "which of the standard final outcomes are published (a step's own outcome, e.g. `suppressed`, always is)")
    static let includeRetriesSetting = Setting.boolean("include_retries", default: false, "also publish outbound.retrying for each retry that uses an attempt")

    static let schema = SettingsSchema(url, BrokerConnection.tls, exchangeName, publishedStatuses, includeRetriesSetting)

    var urls: [AMQPURL]
    var exchange: String
    var statuses: Set<String>
    var includeRetries: Bool

    /// Whether an outcome event of `status` goes out: a listed standard status, a retry (asked for
    /// by `include_retries` before it gets here) or an outcome a step named itself.
    func publishes(_ status: String) -> Bool {
        status == "retrying" || statuses.contains(status) || !Self.statuses.contains(status)
    }

    init(_ settings: Settings) throws {
        urls = try BrokerConnection.urls(settings, url: Self.url)
        exchange = settings[Self.exchangeName]
        statuses = Set(settings[Self.publishedStatuses])
        includeRetries = settings[Self.includeRetriesSetting]
    }
}
