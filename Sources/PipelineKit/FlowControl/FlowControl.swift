import Foundation
import Logging
import Synchronization

/// The pacing, holds and pauses of one worker, shared by every message and every step,
/// kept across pipeline reloads. Steps reach it through `StepContext.flow`; the runtime
/// reports it on `/health` and `/metrics`. Keys are the steps' own (`throughput:{sender}`,
/// `pair:{sender}:{recipient}`): the runtime knows no sender.
public final class FlowControl: Sendable {
    public let clock: any WallClock
    /// Holds and pauses by key.
    public let holds: EscalatingHolds
    private let logger: Logger
    private let pacers = Mutex<[String: SendPacer]>([:])

    public init(clock: any WallClock = SystemWallClock(), logger: Logger) {
        self.clock = clock
        self.logger = logger
        holds = EscalatingHolds(clock: clock)
    }

    /// The pacer of `key` at `limit` messages per second, its slots shared through `store` when there is one.
    /// `label` names it in metrics (`outbound_sender_rate{sender=label}`).
    public func pacer(key: String, label: String, limit: Double, store: (any SlotStore)?) -> SendPacer {
        configuredPacer(key: key, label: label, limit: limit, store: store).pacer
    }

    /// `pacer(key:label:limit:store:)` and the generation (`SendPacer.generation`) that has this
    /// limit and store: a caller may keep the pacer without configuring it again while it reads the same.
    public func configuredPacer(key: String, label: String, limit: Double, store: (any SlotStore)?) -> (pacer: SendPacer, generation: UInt64) {
        let (pacer, existing) = pacers.withLock { pacers -> (SendPacer, Bool) in
            if let pacer = pacers[key] { return (pacer, true) }
            let pacer = SendPacer(key: key, label: label, limit: limit, store: store, clock: clock, logger: logger)
            pacers[key] = pacer
            return (pacer, false)
        }
        return (pacer, existing ? pacer.configure(limit: limit, store: store) : pacer.generation)
    }
}
