import Metrics
import Synchronization

/// Messages that hold on to their delivery because the sink refused their outcome, and why:
/// `/health` says `degraded` while any waits, `outbound_unreported_outcomes` counts them. A source
/// that cannot hold a delivery meanwhile (a webhook answers 503, and Meta sends it again) hands it
/// back at once: its refusals show on `/health` until an outcome is recorded again, or for
/// `shownFor` after the last one.
final class UnreportedOutcomes: Sendable {
    private struct State {
        var waiting = 0
        var reason: String?
        /// When a delivery was last handed back to its source because its outcome was refused.
        var handedBackAt: ContinuousClock.Instant?

        func shown(at now: ContinuousClock.Instant) -> Bool {
            waiting > 0 || handedBackAt.map { now - $0 < UnreportedOutcomes.shownFor } ?? false
        }
    }

    /// How long a delivery handed back for a refused outcome keeps `/health` degraded without an
    /// outcome recorded since (longer than Meta waits between its first retries of a POST).
    static let shownFor: Duration = .seconds(900)

    private let state = Mutex(State())
    /// Whether a hand-back shows: a recorded outcome costs one atomic load otherwise.
    private let handedBackShown = Atomic<Bool>(false)
    private let gauge = Gauge(label: "outbound_unreported_outcomes")

    init() {
        gauge.record(0)
    }

    /// A report was refused for `reason`; true when it is the first of an outage (nothing shown
    /// until now: worth an error in the log).
    func refused(_ reason: String) -> Bool {
        state.withLock { state in
            defer { state.reason = reason }
            return state.reason == nil || !state.shown(at: .now)
        }
    }

    /// A message starts waiting to report its outcome again.
    func begin() {
        gauge.record(state.withLock { state in
            state.waiting += 1
            return state.waiting
        })
    }

    /// A message stopped waiting (reported, or handed back on shutdown).
    func end() {
        gauge.record(state.withLock { state in
            state.waiting -= 1
            if !state.shown(at: .now) { state.reason = nil }
            return state.waiting
        })
    }

    /// A delivery went back to a source that cannot hold it while its outcome is refused.
    func handedBack() {
        state.withLock { state in
            state.handedBackAt = .now
            handedBackShown.store(true, ordering: .releasing)
        }
    }

    /// An outcome was recorded: the sink takes them again, and what was handed back no longer shows.
    func recorded() {
        guard handedBackShown.load(ordering: .acquiring) else { return }
        state.withLock { state in
            state.handedBackAt = nil
            handedBackShown.store(false, ordering: .releasing)
        }
    }

    /// How many wait and the last refusal; nil when none waits and none was handed back lately.
    var current: (count: Int, reason: String)? {
        state.withLock { state in
            guard state.shown(at: .now) else { return nil }
            return (state.waiting, state.reason ?? "outcome not recorded")
        }
    }
}
