import AMQPClient
import Logging
import PipelineKit

/// The queues of one source: a queue per lane (one, `queue`, without lanes), one delay queue per
/// backoff step for each of them (dead-lettering back to its lane's queue when a message's time is
/// up) and one dead-letter queue, `{queue}.dead`, shared by every lane.
public struct QueueTopology: Sendable, Equatable {
    public enum QueueType: String, Sendable, CaseIterable { case classic, quorum }

    /// The source queue (with lanes, the normal lane's): `publish` without `--lane` and `replay` of a letter without a lane go here.
    public var queue: String
    /// Every lane's queue, most urgent first (`[queue]` without lanes).
    public var laneQueues: [String]
    public var type: QueueType
    public var deliveryLimit: Int
    public var retryDelays: [Duration]
    /// The runtime adds up to this fraction of a retry's delay at random: each delay queue holds
    /// a message at most its delay × (1 + jitter).
    public var jitter: Double

    public init(queue: String, laneQueues: [String] = [], type: QueueType, deliveryLimit: Int, retryDelays: [Duration], jitter: Double) {
        self.queue = queue
        self.laneQueues = laneQueues.isEmpty ? [queue] : laneQueues
        self.type = type
        self.deliveryLimit = deliveryLimit
        self.retryDelays = Array(Set(retryDelays)).sorted()
        self.jitter = jitter
    }

    /// The topology a `rabbitmq` source with these settings declares (the worker and `publish` share it).
    public init(source settings: Settings, worker: WorkerConfiguration) throws {
        self = try RabbitMQSettings(settings).topology(worker)
    }

    public var deadQueue: String { "\(queue).dead" }

    /// `{lane queue}.retry.N`, N from 1, in order of delay.
    public func retryQueue(_ index: Int, of laneQueue: String? = nil) -> String { "\(laneQueue ?? queue).retry.\(index + 1)" }

    /// Every queue to declare: each lane's queue followed by its retry queues, then `.dead`. The retry queues are quorum queues that
    /// dead-letter back `at-least-once` whatever the source's type: the broker keeps a message
    /// until the source queue has confirmed it (a classic queue's dead-lettering is at most once:
    /// a broker killed meanwhile loses the message), which needs `reject-publish` overflow (no
    /// length limit is set). Under `quorum` the source and dead queues are quorum queues too (a
    /// node may be lost); otherwise they keep the arguments v1 declared, so an upgrade redeclares
    /// them unchanged.
    public var declarations: [AMQPQueueDeclaration] {
        var source = AMQPTable()
        if type == .quorum {
            source["x-queue-type"] = .string("quorum")
            source["x-delivery-limit"] = .int(Int64(deliveryLimit))
            source["x-dead-letter-exchange"] = .string("")
            source["x-dead-letter-routing-key"] = .string(deadQueue)
        }
        var result: [AMQPQueueDeclaration] = []
        for laneQueue in laneQueues {
            result.append(AMQPQueueDeclaration(name: laneQueue, arguments: source))
            for (index, delay) in retryDelays.enumerated() {
                var retry = quorum(deadLetteringTo: laneQueue)
                retry["x-message-ttl"] = .int(cap(delay))
                result.append(AMQPQueueDeclaration(name: retryQueue(index, of: laneQueue), arguments: retry))
            }
        }
        let dead: AMQPTable = type == .quorum ? ["x-queue-type": .string("quorum")] : [:]
        result.append(AMQPQueueDeclaration(name: deadQueue, arguments: dead))
        return result
    }

    /// A quorum queue whose dead letters go to `target` through the default exchange, at least once.
    private func quorum(deadLetteringTo target: String) -> AMQPTable {
        [
            "x-queue-type": .string("quorum"),
            "x-dead-letter-exchange": .string(""),
            "x-dead-letter-routing-key": .string(target),
            "x-dead-letter-strategy": .string("at-least-once"),
            "x-overflow": .string("reject-publish"),
        ]
    }

    /// Declares each queue. A retry queue that exists with other arguments (an earlier version
    /// declared it classic) is replaced when it is empty — the broker deletes it only then, in one
    /// step — and otherwise used as it is, with a warning that says what to do: its messages
    /// return to the source within its delay, after which a restart replaces it. The source and
    /// dead queues must match (a 406 there stops the start).
    public func declare(on publisher: AMQPPublisher, logger: Logger) async throws(AMQPError) {
        for declaration in declarations {
            do {
                try await publisher.declare(declaration)
            } catch .broker(code: 406, let text) where laneQueues.contains(where: { declaration.name.hasPrefix("\($0).retry.") }) {
                try await replace(declaration, refused: text, on: publisher, logger: logger)
            }
        }
    }

    private func replace(_ declaration: AMQPQueueDeclaration, refused: String, on publisher: AMQPPublisher, logger: Logger) async throws(AMQPError) {
        do {
            try await publisher.delete(declaration.name, ifEmpty: true)
            try await publisher.declare(declaration)
            logger.notice("retry queue declared anew with at-least-once dead-lettering (it was empty)", metadata: ["queue": .string(declaration.name), "was": .string(refused)])
        } catch .broker(code: 406, let text) {
            let waiting = (try? await publisher.messageCount(declaration.name)) ?? 0
            logger.warning("""
                retry queue exists with other arguments than this pipeline declares (an earlier version's classic queue?) and holds \(waiting) messages; \
                using it as it is: its messages return to the source at most once (a broker killed meanwhile loses them). \
                They are back in the source within its delay: restart the worker then and it replaces the queue, or delete it when empty and restart
                """, metadata: ["queue": .string(declaration.name), "broker": .string(text)])
        }
    }

    /// The delay queue of `laneQueue`'s lane for a wait of `delay` (the shortest that holds it, else
    /// the longest) and the per-message expiration in milliseconds (the wait, or what that queue holds at most).
    public func route(delay: Duration, laneQueue: String? = nil) -> (queue: String, expirationMilliseconds: Int64) {
        let wanted = max(1, delay.milliseconds)
        let index = retryDelays.firstIndex { cap($0) >= wanted } ?? (retryDelays.count - 1)
        return (retryQueue(index, of: laneQueue), min(wanted, cap(retryDelays[index])))
    }

    private func cap(_ delay: Duration) -> Int64 {
        max(1, Int64((Double(delay.milliseconds) * (1 + jitter)).rounded(.up)))
    }
}
