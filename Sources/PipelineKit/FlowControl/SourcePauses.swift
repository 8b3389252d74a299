import Foundation
import Logging
import Metrics
import Synchronization

/// Keeps the source paused exactly while a hold that covers every message lasts
/// (`EscalatingHolds.pausingSource`: the holds are the one record of a pause).
///
/// `changed()` applies a new or ended hold at once; `follow(until:)`, a task of the worker's
/// own group, wakes when the last such hold ends (on the flow's clock, so a pipeline test
/// follows pauses on its virtual clock) and resumes the source.
final class SourcePauses: Sendable {
    private struct State {
        /// The source was told to pause and not yet to resume.
        var paused = false
        /// Causes whose `outbound_consumption_paused` gauge is 1.
        var shown: Set<String> = []
    }

    private let holds: EscalatingHolds
    private let source: any Source
    private let clock: any WallClock
    private let shutdown: ShutdownSignal
    private let logger: Logger
    private let state = Mutex(State())
    private let doorbell = Doorbell()
    private let stopped = Atomic<Bool>(false)
    private let sleeping = Atomic<Bool>(false)

    init(holds: EscalatingHolds, source: any Source, clock: any WallClock, shutdown: ShutdownSignal, logger: Logger) {
        self.holds = holds
        self.source = source
        self.clock = clock
        self.shutdown = shutdown
        self.logger = logger
        Self.gauge("sender_side").record(0)
    }

    /// Why consumption is paused, when it is: the reason of the hold that ends last.
    var reason: String? { holds.pausingSource.last?.reason }

    /// A pause began or holds were cleared: the source follows now, and the follower's wake-up with it.
    func changed() {
        apply()
        doorbell.ring()
    }

    /// Whether the follower sleeps on the clock now (`outbound-worker test` counts the clock's sleepers).
    var sleepsOnClock: Bool { sleeping.load(ordering: .acquiring) }

    /// Follows the holds until `stop`.
    func follow() async {
        while !stopped.load(ordering: .acquiring), !Task.isCancelled {
            if let end = apply() {
                sleeping.store(true, ordering: .releasing)
                await doorbell.wait(until: end, on: clock)
                sleeping.store(false, ordering: .releasing)
            } else {
                await doorbell.wait()
            }
        }
    }

    /// Ends `follow` (the worker stops taking messages).
    func stop() {
        stopped.store(true, ordering: .releasing)
        doorbell.ring()
    }

    /// Pauses or resumes the source and sets the gauges as the holds stand; when the first hold
    /// ends. Under the lock, so that two callers cannot tell the source in the wrong order.
    @discardableResult
    private func apply() -> Date? {
        let pauses = holds.pausingSource
        let causes = Set(pauses.compactMap(\.pausesSource))
        let shuttingDown = shutdown.isRaised
        state.withLock { state in
            for cause in causes.subtracting(state.shown) { Self.gauge(cause).record(1) }
            for cause in state.shown.subtracting(causes) { Self.gauge(cause).record(0) }
            state.shown = causes
            guard !shuttingDown else { return }
            if !pauses.isEmpty, !state.paused, let last = pauses.last {
                state.paused = true
                logger.error("sender-side failure: consumption paused",
                             metadata: ["reason": .string(last.reason), "pause": .string(DurationParser.format(.milliseconds(Int64(last.until.timeIntervalSince(clock.now()) * 1000))))])
                source.pause()
            } else if pauses.isEmpty, state.paused {
                state.paused = false
                logger.notice("consumption resumed after a pause")
                source.resume()
            }
        }
        return pauses.first?.until
    }

    /// `outbound_consumption_paused{reason}`: 1 while consumption is paused for that cause.
    private static func gauge(_ cause: String) -> Gauge {
        Gauge(label: "outbound_consumption_paused", dimensions: [("reason", cause)])
    }
}
