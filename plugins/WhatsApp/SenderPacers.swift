import PipelineKit
import Synchronization

/// The pacers of one `dispatch` step's senders. The step's client, and with it each sender's
/// limit and slot store, is fixed for the step's life, so a sender's pacer is looked up and
/// configured in `FlowControl` once, not for every message — again only when someone else
/// configured it since (`SendPacer.generation`): the step of the pipeline before a reload, while
/// its last messages finish, must not leave the pacer on its old limit or store.
final class SenderPacers: Sendable {
    private struct Cached {
        var flow: FlowControl
        var pacer: SendPacer
        var generation: UInt64
    }

    private let pacers = Mutex<[String: Cached]>([:])

    /// The pacer of `sender` in `flow`, configured with `client`'s limit and slot store.
    func pacer(_ sender: String, _ flow: FlowControl, _ client: any CloudAPISender) -> SendPacer {
        if let cached = pacers.withLock({ $0[sender] }), cached.flow === flow, cached.pacer.generation == cached.generation {
            return cached.pacer
        }
        let configured = flow.configuredPacer(key: "throughput:\(sender)", label: sender, limit: client.configuration.limit(for: sender), store: client.slotStore)
        pacers.withLock { $0[sender] = Cached(flow: flow, pacer: configured.pacer, generation: configured.generation) }
        return configured.pacer
    }
}
