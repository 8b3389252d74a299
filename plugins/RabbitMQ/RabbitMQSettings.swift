import AMQPClient
import PipelineKit

/// The settings of the `rabbitmq` source, read once (the runtime's own settings sit beside them).
struct RabbitMQSettings: Sendable {
    static let schema = SettingsSchema([
        SettingSpec("url", .urlList, default: .string("amqp://guest:guest@localhost:5672/%2F"), secrecy: .urlPassword, "broker URL, or a list tried in turn on connect and reconnect"),
        BrokerConnection.tlsSetting,
        SettingSpec("queue", .string, default: .string("whatsapp.outbound"), "source queue; dead letters go to {queue}.dead"),
        SettingSpec("prefetch", .integer(1...65_535), default: .integer(64), "unacknowledged messages at most (basic.qos); waiting messages count against it"),
        SettingSpec("declare", .boolean, default: .boolean(true), "declare the queue, its retry queues and {queue}.dead"),
        SettingSpec("queue_type", .choice(["classic", "quorum"]), default: .string("classic"), "quorum for a RabbitMQ cluster"),
        SettingSpec("delivery_limit", .integer(1...1000), default: .integer(20), "quorum only: deliveries after which the broker dead-letters a message that crashes every worker"),
        SettingSpec("heartbeat", .duration, default: .duration(.seconds(30)), "AMQP heartbeat interval, whole seconds (0 turns heartbeats off)"),
    ])

    var urls: [AMQPURL]
    var queue: String
    var prefetch: Int
    var declare: Bool
    var queueType: QueueTopology.QueueType
    var deliveryLimit: Int
    var heartbeat: Int

    init(_ settings: Settings) throws {
        urls = try BrokerConnection.urls(settings)
        queue = try settings.string("queue")
        prefetch = try settings.integer("prefetch")
        declare = try settings.boolean("declare")
        queueType = QueueTopology.QueueType(rawValue: try settings.string("queue_type")) ?? .classic
        deliveryLimit = try settings.integer("delivery_limit")
        heartbeat = Int(try settings.duration("heartbeat").components.seconds)
    }

    func topology(_ worker: WorkerConfiguration) -> QueueTopology {
        QueueTopology(queue: queue, type: queueType, deliveryLimit: deliveryLimit, retryDelays: worker.retry.backoff, jitter: worker.retry.jitter)
    }

    /// Rules `check` applies to the source's settings.
    static func check(_ pipeline: PipelineDefinition) -> [Diagnostic] {
        let source = pipeline.source
        var diagnostics = BrokerConnection.check(source, owner: "source `rabbitmq`")
        if case .duration(let heartbeat)? = source.settings["heartbeat"]?.value, heartbeat != .zero, heartbeat.milliseconds % 1000 != 0 {
            diagnostics.append(.error(at: source.settings["heartbeat"]?.location ?? source.location, "`heartbeat` of source `rabbitmq`: AMQP heartbeats are whole seconds (write 1s or more, or 0 to turn them off), found \(DurationParser.format(heartbeat))"))
        }
        if case .integer(let prefetch)? = source.settings["prefetch"]?.value, prefetch < pipeline.worker.concurrency {
            diagnostics.append(.warning(at: source.settings["prefetch"]?.location ?? source.location, "`prefetch` of source `rabbitmq` (\(prefetch)) is below `concurrency` (\(pipeline.worker.concurrency)): at most \(prefetch) messages can be in flight, and none can wait without holding up the rest"))
        }
        return diagnostics
    }
}
