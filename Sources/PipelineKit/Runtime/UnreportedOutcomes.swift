import Metrics
import Synchronization

/// Messages that hold on to their delivery because the sink refused their outcome, and why:
/// `/health` says `degraded` while any waits, `outbound_unreported_outcomes` counts them.
final class UnreportedOutcomes: Sendable {
    private struct State {
        var waiting = 0
        var reason: String?
    }

    private let state = Mutex(State())
    private let gauge = Gauge(label: "outbound_unreported_outcomes")

    init() {
        gauge.record(0)
    }

    /// A report was refused for `reason`; true when it is the first since none waited (worth an error in the log).
    func refused(_ reason: String) -> Bool {
        state.withLock { state in
            defer { state.reason = reason }
            return state.reason == nil
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
            if state.waiting == 0 { state.reason = nil }
            return state.waiting
        })
    }

    /// How many wait and the last refusal, nil when none waits.
    var current: (count: Int, reason: String)? {
        state.withLock { state in
            guard state.waiting > 0 else { return nil }
            return (state.waiting, state.reason ?? "outcome not recorded")
        }
    }
}
