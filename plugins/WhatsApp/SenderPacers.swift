import PipelineKit
import Synchronization

/// The pacers of one `dispatch` step's senders. The step's client, and with it each sender's
/// limit and slot store, is fixed for the step's life, so a sender's pacer is looked up and
/// configured in `FlowControl` once, not for every message — again only when someone else
/// configured it since (`SendPacer.generation`): the step of the pipeline before a reload, while
/// its last messages finish, must not leave the pacer on its old limit or store — or when
/// `FlowControl` let it go, idle (`FlowControl.idlePacerLifetime`). Pacers so replaced are dropped
/// from here whenever the cache has doubled since it was last pruned.
final class SenderPacers: Sendable {
    private struct Cached {
        var flow: FlowControl
        var pacer: SendPacer
        var generation: UInt64

        var isCurrent: Bool { pacer.generation == generation }
    }

    private struct Cache {
        var bySender: [String: Cached] = [:]
        /// The size at which the cache is pruned next.
        var pruneAt = SenderPacers.leastPruneSize
    }

    /// The cache is not pruned below this size.
    static let leastPruneSize = 64
    private let pacers = Mutex(Cache())

    /// The pacer of `sender` in `flow`, configured with `client`'s limit and slot store.
    func pacer(_ sender: String, _ flow: FlowControl, _ client: any CloudAPISender) -> SendPacer {
        if let cached = pacers.withLock({ $0.bySender[sender] }), cached.flow === flow, cached.isCurrent {
            return cached.pacer
        }
        let configured = flow.configuredPacer(key: "throughput:\(sender)", label: sender, limit: client.configuration.limit(for: sender), store: client.slotStore)
        pacers.withLock { cache in
            cache.bySender[sender] = Cached(flow: flow, pacer: configured.pacer, generation: configured.generation)
            if cache.bySender.count >= cache.pruneAt {
                cache.bySender = cache.bySender.filter { $0.value.isCurrent }
                cache.pruneAt = max(Self.leastPruneSize, cache.bySender.count * 2)
            }
        }
        return configured.pacer
    }

    /// How many senders' pacers are kept here (for tests).
    var count: Int { pacers.withLock { $0.bySender.count } }
}
