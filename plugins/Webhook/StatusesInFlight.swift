import Synchronization

/// The wamids whose statuses this process is publishing now — checked against the ledger and not
/// yet recorded there. A POST with a status of one of them waits until the first is recorded (or
/// given up), then is checked against what that one published: without it, `read` and then
/// `delivered` of one wamid, in two POSTs a moment apart, were both let through (the ledger knew
/// neither yet) and reached consumers in either order. Processes of the statuses pipeline side by
/// side still check each on its own.
///
/// Bounded: a POST waits at most `longestWait`, then goes on with what is free — unordered against
/// the one it waited for, as before; a hold not given back within `forgottenAfter` (its message
/// went back to the source without its steps undone) counts as free. One per process
/// (`shared`): the pipeline a reload replaced holds its POSTs' wamids in the same table.
final class StatusesInFlight: Sendable {
    /// The process's: a reload builds the step again, and POSTs on the pipeline it replaced still hold wamids.
    static let shared = StatusesInFlight()
    static let longestWait = Duration.seconds(5)
    static let forgottenAfter = Duration.seconds(30)
    /// How often a waiting POST looks again (waits last about an event's confirm and a Redis write).
    static let look = Duration.milliseconds(2)

    /// Whose hold a wamid is, and since when.
    private struct Hold {
        var holder: UInt64
        var since: ContinuousClock.Instant
    }

    private struct State {
        var held: [String: Hold] = [:]
        var waiting = 0
        var nextHolder: UInt64 = 0
    }

    /// What `hold` took: given back with `release`.
    struct Held: Sendable, Equatable {
        var holder: UInt64
        var wamids: Set<String>
    }

    private let state = Mutex(State())

    /// POSTs waiting now (for tests).
    var waiting: Int { state.withLock { $0.waiting } }

    /// Whether a POST holds `wamid` (for tests).
    func isHeld(_ wamid: String) -> Bool { state.withLock { $0.held[wamid] != nil } }

    /// Holds `wamids` once no other POST holds any of them (after `longestWait`, or once the task is
    /// cancelled, those free); returns what it holds, to `release`.
    func hold(_ wamids: Set<String>) async -> Held {
        let deadline = ContinuousClock.now + Self.longestWait
        var waited = false
        defer { if waited { state.withLock { $0.waiting -= 1 } } }
        while true {
            let now = ContinuousClock.now
            let giveUp = now >= deadline || Task.isCancelled
            let taken = state.withLock { state -> Held? in
                let busy = wamids.filter { state.held[$0].map { now - $0.since < Self.forgottenAfter } ?? false }
                guard busy.isEmpty || giveUp else {
                    if !waited { state.waiting += 1 }
                    return nil
                }
                state.nextHolder += 1
                let free = wamids.subtracting(busy)
                for wamid in free { state.held[wamid] = Hold(holder: state.nextHolder, since: now) }
                return Held(holder: state.nextHolder, wamids: free)
            }
            if let taken { return taken }
            waited = true
            try? await Task.sleep(for: Self.look)
        }
    }

    /// Gives back `wamids` of what `held` took (those another POST took over since are its own).
    func release(_ wamids: Set<String>, of held: Held) {
        guard !wamids.isEmpty else { return }
        state.withLock { state in
            for wamid in wamids where state.held[wamid]?.holder == held.holder { state.held.removeValue(forKey: wamid) }
        }
    }
}
