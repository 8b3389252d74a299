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
    private let pacers: Mutex<Pacers>

    /// A pacer that no message has asked for a turn this long, with no place left in its line, is
    /// let go with its metric series (`outbound_sender_rate`, `outbound_send_slots_unused_total`):
    /// a sender seen once — or a `phoneNumberId` the Cloud API then refuses — does not keep one for
    /// the worker's life. Its next message makes a new one, at the configured limit (a slowdown
    /// learnt before is forgotten, as by a restart).
    public static let idlePacerLifetime: TimeInterval = 600
    /// Idle pacers are looked for at most this often, when a new one is made.
    static let pacerSweepInterval: TimeInterval = 60

    private struct Pacers {
        var byKey: [String: SendPacer] = [:]
        var lastSweep: Date

        /// Lets go of the pacers idle for `idlePacerLifetime`, at most once every `pacerSweepInterval`.
        mutating func sweep(now: Date) {
            guard now.timeIntervalSince(lastSweep) >= FlowControl.pacerSweepInterval || now < lastSweep else { return }
            lastSweep = now
            let cutoff = now.addingTimeInterval(-FlowControl.idlePacerLifetime)
            for (key, pacer) in byKey where pacer.retire(unusedSince: cutoff) {
                byKey[key] = nil
            }
        }
    }

    public init(clock: any WallClock = SystemWallClock(), logger: Logger) {
        self.clock = clock
        self.logger = logger
        holds = EscalatingHolds(clock: clock)
        pacers = Mutex(Pacers(lastSweep: clock.now()))
    }

    /// The pacer of `key` at `limit` messages per second, its slots shared through `store` when there is one.
    /// `label` names it in metrics (`outbound_sender_rate{sender=label}`).
    public func pacer(key: String, label: String, limit: Double, store: (any SlotStore)?) -> SendPacer {
        configuredPacer(key: key, label: label, limit: limit, store: store).pacer
    }

    /// `pacer(key:label:limit:store:)` and the generation (`SendPacer.generation`) that has this
    /// limit and store: a caller may keep the pacer without configuring it again while it reads the
    /// same (it changes too when the pacer is let go, idle: `idlePacerLifetime`).
    public func configuredPacer(key: String, label: String, limit: Double, store: (any SlotStore)?) -> (pacer: SendPacer, generation: UInt64) {
        // Configured under the lock a sweep takes: a pacer retired between its lookup and its
        // configuration would give a generation that stays current, and be kept for good.
        pacers.withLock { pacers in
            if let pacer = pacers.byKey[key] { return (pacer, pacer.configure(limit: limit, store: store)) }
            pacers.sweep(now: clock.now())
            let pacer = SendPacer(key: key, label: label, limit: limit, store: store, clock: clock, logger: logger)
            pacers.byKey[key] = pacer
            return (pacer, pacer.generation)
        }
    }
}
