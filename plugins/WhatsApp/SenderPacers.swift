import PipelineKit
import Synchronization

/// The pacers of one `dispatch` step's senders. The step's client, and with it each sender's
/// limit and slot store, is fixed for the step's life (a reload builds a new step), so a sender's
/// pacer is looked up and configured in `FlowControl` once, not for every message.
final class SenderPacers: Sendable {
    private let pacers = Mutex<[PacerKey: SendPacer]>([:])

    private struct PacerKey: Hashable {
        var flow: ObjectIdentifier
        var sender: String
    }

    /// The pacer of `sender` in `flow`, configured with `client`'s limit and slot store.
    func pacer(_ sender: String, _ flow: FlowControl, _ client: any CloudAPISender) -> SendPacer {
        let key = PacerKey(flow: ObjectIdentifier(flow), sender: sender)
        if let pacer = pacers.withLock({ $0[key] }) { return pacer }
        let pacer = flow.pacer(key: "throughput:\(sender)", label: sender, limit: client.configuration.limit(for: sender), store: client.slotStore)
        pacers.withLock { $0[key] = pacer }
        return pacer
    }
}
