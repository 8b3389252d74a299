import AMQPClient
import PipelineKit

/// The settings of the `rabbitmq` source, read once (the runtime's own settings sit beside them).
public struct RabbitMQSettings: Sendable {
    static let url = BrokerConnection.url("broker URL, or a list tried in turn on connect and reconnect")
    static let queueName = Setting.string("queue", default: "whatsapp.outbound", "source queue; dead letters go to {queue}.dead")
    static let prefetchCount = Setting.integer("prefetch", 1...65_535, default: 64, "unacknowledged messages at most (basic.qos), per lane; waiting messages count against it")
    /// Whether the worker declares its queues (`publish` declares them too when it is on).
    public static let declareQueues = Setting.boolean("declare", default: true, "declare the queue, its retry queues and {queue}.dead")
    static let queueKind = Setting.choice("queue_type", default: QueueTopology.QueueType.classic, "quorum for a RabbitMQ cluster")
    static let deliveryLimitCount = Setting.integer("delivery_limit", 1...1000, default: 20, "quorum only: deliveries after which the broker dead-letters a message that crashes every worker")
    static let heartbeatInterval = Setting.duration("heartbeat", default: .seconds(30), "AMQP heartbeat interval, whole seconds, at most 65535s (0 turns heartbeats off)")
    static let laneName = Setting.requiredString("name", "the lane's name, as events, `status`, metrics and `publish --lane` know it")
    static let laneQueue = Setting.requiredString("queue", "the lane's queue (it gets its own retry queues)")
    static let laneShare = Setting.fraction("max_share", default: 1, "the share of a sender's sends this lane may take at most while another lane has messages waiting for that sender")
    static let laneList = Setting.objects("lanes", SettingsSchema(laneName, laneQueue, laneShare),
                                          "priority lanes, most urgent first (`[{name, queue, max_share}]`); `queue` must be one of their queues; without it, one lane: `queue`")

    static let schema = SettingsSchema(url, BrokerConnection.tls, queueName, laneList, prefetchCount, declareQueues, queueKind, deliveryLimitCount, heartbeatInterval)

    /// A lane and the queue it consumes.
    public struct LaneQueue: Sendable, Equatable {
        public var lane: Lane
        public var queue: String
    }

    var urls: [AMQPURL]
    public var queue: String
    var prefetch: Int
    var declare: Bool
    var queueType: QueueTopology.QueueType
    var deliveryLimit: Int
    var heartbeat: Int
    /// The lanes, most urgent first; empty without `lanes`.
    public var lanes: [LaneQueue]

    public init(_ settings: Settings) throws {
        urls = try BrokerConnection.urls(settings, url: Self.url)
        queue = settings[Self.queueName]
        prefetch = settings[Self.prefetchCount]
        declare = settings[Self.declareQueues]
        queueType = settings[Self.queueKind]
        deliveryLimit = settings[Self.deliveryLimitCount]
        heartbeat = Int(settings[Self.heartbeatInterval].components.seconds)
        lanes = settings[Self.laneList].enumerated().map { rank, lane in
            LaneQueue(lane: Lane(name: lane[Self.laneName], rank: rank, maxShare: lane[Self.laneShare]), queue: lane[Self.laneQueue])
        }
    }

    func topology(_ worker: WorkerConfiguration) -> QueueTopology {
        QueueTopology(queue: queue, laneQueues: lanes.map(\.queue), type: queueType, deliveryLimit: deliveryLimit, retryDelays: worker.retry.backoff, jitter: worker.retry.jitter)
    }

    /// The queue of the lane named `name`, nil when there is no such lane.
    public func queue(ofLane name: String) -> String? {
        Self.queue(ofLane: name, in: lanes)
    }

    /// The queue of the lane named `name` among `lanes`.
    static func queue(ofLane name: String, in lanes: [LaneQueue]) -> String? {
        lanes.first { $0.lane.name == name }?.queue
    }

    /// The longest heartbeat AMQP can negotiate (a 16-bit count of seconds).
    static let longestHeartbeat: Duration = .seconds(65_535)

    /// Rules `check` applies to the source's settings.
    static func check(_ pipeline: PipelineDefinition) -> [Diagnostic] {
        let source = pipeline.source
        let settings = source.settings
        var diagnostics = BrokerConnection.check(source, url: url, owner: "source `rabbitmq`")
        let heartbeat = settings[heartbeatInterval]
        if heartbeat != .zero, heartbeat.milliseconds % 1000 != 0 {
            diagnostics.append(.error(at: settings.location(of: heartbeatInterval) ?? source.location, "`heartbeat` of source `rabbitmq`: AMQP heartbeats are whole seconds (write 1s or more, or 0 to turn them off), found \(DurationParser.format(heartbeat))"))
        } else if heartbeat > Self.longestHeartbeat {
            // AMQP carries it in 16 bits; beyond, the connection's setup trapped.
            diagnostics.append(.error(at: settings.location(of: heartbeatInterval) ?? source.location, "`heartbeat` of source `rabbitmq`: at most \(DurationParser.format(Self.longestHeartbeat)) (AMQP's limit), found \(DurationParser.format(heartbeat))"))
        }
        diagnostics += checkLanes(settings, source)
        let prefetch = settings[prefetchCount]
        if prefetch < pipeline.worker.concurrency {
            diagnostics.append(.warning(at: settings.location(of: prefetchCount) ?? source.location, "`prefetch` of source `rabbitmq` (\(prefetch)) is below `concurrency` (\(pipeline.worker.concurrency)): at most \(prefetch) messages can be in flight, and none can wait without holding up the rest"))
        }
        return diagnostics
    }

    /// Lanes have distinct names and queues, and `queue` is one of them.
    private static func checkLanes(_ settings: Settings, _ source: ComponentDefinition) -> [Diagnostic] {
        let lanes = settings[laneList]
        guard !lanes.isEmpty else { return [] }
        let at = settings.location(of: laneList) ?? source.location
        var diagnostics: [Diagnostic] = []
        for (label, values) in [("name", lanes.map { $0[laneName] }), ("queue", lanes.map { $0[laneQueue] })] {
            let repeated = Set(values.filter { value in values.filter { $0 == value }.count > 1 })
            if !repeated.isEmpty {
                diagnostics.append(.error(at: at, "`lanes` of source `rabbitmq`: each lane needs its own \(label); \(repeated.sorted().joined(separator: ", ")) appears more than once"))
            }
        }
        let queue = settings[queueName]
        if !lanes.contains(where: { $0[laneQueue] == queue }) {
            diagnostics.append(.error(at: at, "`lanes` of source `rabbitmq`: `queue` (\(queue)) must be the queue of one lane (the normal one: `publish` without --lane and `replay` of a letter without a lane go there); lanes: \(lanes.map { "\($0[laneName]) (\($0[laneQueue]))" }.joined(separator: ", "))"))
        }
        return diagnostics
    }
}
