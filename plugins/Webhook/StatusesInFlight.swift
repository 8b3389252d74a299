import Synchronization

/// The wamids whose statuses this process is publishing now — checked against the ledger and not
/// yet recorded there. A POST with a status of one of them waits until the first is recorded (or
/// given up), then is checked against what that one published: without it, `read` and then
/// `delivered` of one wamid, in two POSTs a moment apart, were both let through (the ledger knew
/// neither yet) and reached consumers in either order. Processes of the statuses pipeline side by
/// side still check each on its own.
///
/// Bounded: a POST waits at most `longestWait`, then goes on with what is free; a hold not given
/// back within `forgottenAfter` (its message went back to the source without its steps undone)
/// counts as free.
final class StatusesInFlight: Sendable {
    static let longestWait = Duration.seconds(5)
    static let forgottenAfter = Duration.seconds(30)
    /// How often a waiting POST looks again (waits last about an event's confirm and a Redis write).
    static let look = Duration.milliseconds(2)

    private struct State {
        var held: [String: ContinuousClock.Instant] = [:]
        var waiting = 0
    }

    private let state = Mutex(State())

    /// POSTs waiting now (for tests).
    var waiting: Int { state.withLock { $0.waiting } }

    /// Whether a POST holds `wamid` (for tests).
    func isHeld(_ wamid: String) -> Bool { state.withLock { $0.held[wamid] != nil } }

    /// Holds `wamids` once no other POST holds any of them (after `longestWait`, those free);
    /// returns those it holds, to `release`.
    func hold(_ wamids: Set<String>) async -> Set<String> {
        let deadline = ContinuousClock.now + Self.longestWait
        var waited = false
        defer { if waited { state.withLock { $0.waiting -= 1 } } }
        while true {
            let now = ContinuousClock.now
            let taken = state.withLock { state -> Set<String>? in
                let busy = wamids.filter { state.held[$0].map { now - $0 < Self.forgottenAfter } ?? false }
                guard busy.isEmpty || now >= deadline else {
                    if !waited { state.waiting += 1 }
                    return nil
                }
                let free = wamids.subtracting(busy)
                for wamid in free { state.held[wamid] = now }
                return free
            }
            if let taken { return taken }
            waited = true
            try? await Task.sleep(for: Self.look)
        }
    }

    func release(_ wamids: Set<String>) {
        guard !wamids.isEmpty else { return }
        state.withLock { state in
            for wamid in wamids { state.held.removeValue(forKey: wamid) }
        }
    }
}
