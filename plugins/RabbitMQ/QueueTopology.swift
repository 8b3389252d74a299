import AMQPClient
import PipelineKit

/// The queues of one source: the source queue, one delay queue per backoff step
/// (dead-lettering back to the source queue when a message's time is up) and the dead-letter queue.
public struct QueueTopology: Sendable, Equatable {
    public enum QueueType: String, Sendable { case classic, quorum }

    public var queue: String
    public var type: QueueType
    public var deliveryLimit: Int
    public var retryDelays: [Duration]
    /// The runtime adds up to this fraction of a retry's delay at random: each delay queue holds
    /// a message at most its delay × (1 + jitter).
    public var jitter: Double

    public init(queue: String, type: QueueType, deliveryLimit: Int, retryDelays: [Duration], jitter: Double) {
        self.queue = queue
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

    /// `{queue}.retry.N`, N from 1, in order of delay.
    public func retryQueue(_ index: Int) -> String { "\(queue).retry.\(index + 1)" }

    /// Every queue to declare, the source queue first.
    public var declarations: [AMQPQueueDeclaration] {
        var source = AMQPTable()
        if type == .quorum {
            source["x-queue-type"] = .string("quorum")
            source["x-delivery-limit"] = .int(Int64(deliveryLimit))
            source["x-dead-letter-exchange"] = .string("")
            source["x-dead-letter-routing-key"] = .string(deadQueue)
        }
        var result = [AMQPQueueDeclaration(name: queue, arguments: source)]
        for (index, delay) in retryDelays.enumerated() {
            result.append(AMQPQueueDeclaration(name: retryQueue(index), arguments: [
                "x-message-ttl": .int(cap(delay)),
                "x-dead-letter-exchange": .string(""),
                "x-dead-letter-routing-key": .string(queue),
            ]))
        }
        var dead = AMQPTable()
        if type == .quorum { dead["x-queue-type"] = .string("quorum") }
        result.append(AMQPQueueDeclaration(name: deadQueue, arguments: dead))
        return result
    }

    /// The delay queue for a wait of `delay` (the shortest that holds it, else the longest)
    /// and the per-message expiration in milliseconds (the wait, or what that queue holds at most).
    public func route(delay: Duration) -> (queue: String, expirationMilliseconds: Int64) {
        let wanted = max(1, delay.milliseconds)
        let index = retryDelays.firstIndex { cap($0) >= wanted } ?? (retryDelays.count - 1)
        return (retryQueue(index), min(wanted, cap(retryDelays[index])))
    }

    private func cap(_ delay: Duration) -> Int64 {
        max(1, Int64((Double(delay.milliseconds) * (1 + jitter)).rounded(.up)))
    }
}
