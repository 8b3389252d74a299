import PipelineKit

/// The settings of the `rabbitmq` source.
enum RabbitMQSettings {
    static let schema = SettingsSchema([
        SettingSpec("url", .urlList, default: .string("amqp://guest:guest@localhost:5672/%2F"), secrecy: .urlPassword, "broker URL, or a list tried in turn on connect and reconnect"),
        SettingSpec("queue", .string, default: .string("whatsapp.outbound"), "source queue; dead letters go to {queue}.dead"),
        SettingSpec("prefetch", .integer(1...65_535), default: .integer(64), "unacknowledged messages at most (basic.qos)"),
        SettingSpec("concurrency", .integer(1...4096), default: .integer(32), "messages in flight at once"),
        SettingSpec("declare", .boolean, default: .boolean(true), "declare the queue, its retry queues and {queue}.dead"),
        SettingSpec("queue_type", .choice(["classic", "quorum"]), default: .string("classic"), "quorum for a RabbitMQ cluster"),
        SettingSpec("delivery_limit", .integer(1...1000), default: .integer(20), "quorum only: deliveries after which the broker dead-letters a message that crashes every worker"),
        SettingSpec("heartbeat", .duration, default: .duration(.seconds(30)), "AMQP heartbeat interval"),
        SettingSpec("drain_timeout", .duration, default: .duration(.seconds(20)), "on SIGTERM, how long in-flight messages may take before they are requeued"),
        SettingSpec("pause", .duration, default: .duration(.seconds(5)), "first pause of consumption after a sender-side failure; doubles up to 5m"),
        SettingSpec("retry", .object(RetryPolicy.settingsSchema), "retry policy"),
    ])
}
