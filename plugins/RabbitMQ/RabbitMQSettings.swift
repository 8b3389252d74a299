import AMQPClient
import PipelineKit

/// The settings of the `rabbitmq` source, read once (the runtime's own settings sit beside them).
public struct RabbitMQSettings: Sendable {
    static let url = BrokerConnection.url("broker URL, or a list tried in turn on connect and reconnect")
    static let queueName = Setting.string("queue", default: "whatsapp.outbound", "source queue; dead letters go to {queue}.dead")
    static let prefetchCount = Setting.integer("prefetch", 1...65_535, default: 64, "unacknowledged messages at most (basic.qos); waiting messages count against it")
    /// Whether the worker declares its queues (`publish` declares them too when it is on).
    public static let declareQueues = Setting.boolean("declare", default: true, "declare the queue, its retry queues and {queue}.dead")
    static let queueKind = Setting.choice("queue_type", default: QueueTopology.QueueType.classic, "quorum for a RabbitMQ cluster")
    static let deliveryLimitCount = Setting.integer("delivery_limit", 1...1000, default: 20, "quorum only: deliveries after which the broker dead-letters a message that crashes every worker")
    static let heartbeatInterval = Setting.duration("heartbeat", default: .seconds(30), "AMQP heartbeat interval, whole seconds (0 turns heartbeats off)")

    static let schema = SettingsSchema(url, BrokerConnection.tls, queueName, prefetchCount, declareQueues, queueKind, deliveryLimitCount, heartbeatInterval)

    var urls: [AMQPURL]
    var queue: String
    var prefetch: Int
    var declare: Bool
    var queueType: QueueTopology.QueueType
    var deliveryLimit: Int
    var heartbeat: Int

    init(_ settings: Settings) throws {
        urls = try BrokerConnection.urls(settings, url: Self.url)
        queue = settings[Self.queueName]
        prefetch = settings[Self.prefetchCount]
        declare = settings[Self.declareQueues]
        queueType = settings[Self.queueKind]
        deliveryLimit = settings[Self.deliveryLimitCount]
        heartbeat = Int(settings[Self.heartbeatInterval].components.seconds)
    }

    func topology(_ worker: WorkerConfiguration) -> QueueTopology {
        QueueTopology(queue: queue, type: queueType, deliveryLimit: deliveryLimit, retryDelays: worker.retry.backoff, jitter: worker.retry.jitter)
    }

    /// Rules `check` applies to the source's settings.
    static func check(_ pipeline: PipelineDefinition) -> [Diagnostic] {
        let source = pipeline.source
        let settings = source.settings
        var diagnostics = BrokerConnection.check(source, url: url, owner: "source `rabbitmq`")
        let heartbeat = settings[heartbeatInterval]
        if heartbeat != .zero, heartbeat.milliseconds % 1000 != 0 {
            diagnostics.append(.error(at: settings.location(of: heartbeatInterval) ?? source.location, "`heartbeat` of source `rabbitmq`: AMQP heartbeats are whole seconds (write 1s or more, or 0 to turn them off), found \(DurationParser.format(heartbeat))"))
        }
        let prefetch = settings[prefetchCount]
        if prefetch < pipeline.worker.concurrency {
            diagnostics.append(.warning(at: settings.location(of: prefetchCount) ?? source.location, "`prefetch` of source `rabbitmq` (\(prefetch)) is below `concurrency` (\(pipeline.worker.concurrency)): at most \(prefetch) messages can be in flight, and none can wait without holding up the rest"))
        }
        return diagnostics
    }
}
