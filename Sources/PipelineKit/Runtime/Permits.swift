import Synchronization

/// Bounded concurrency: `acquire` waits until one of `count` permits is free. While both wait, freed
/// permits go in turn to a message whose wait has ended (`resuming`) and to a new delivery; within
/// each, to the most urgent lane waiting (lowest rank), first come, first served within a lane.
/// `close` turns every waiter and later caller away (shutdown).
///
/// Why in turn: with new deliveries always first, a lane taking in its backlog — each delivery
/// given its place in line and sent back to wait — kept every permit while the turns of another
/// lane's parked messages came and went (a bulk lane under `max_share` got none of its sends for
/// seconds while 2,000 urgent messages were taken in). With resuming messages always first, a
/// worker whose sends fill its permits would keep a new urgent delivery out until the parked
/// backlog of every lane had gone. In turn, a new delivery waits for at most one resuming message
/// per permit freed.
final class Permits: Sendable {
    private struct Waiter {
        var id: Int
        var rank: Int
        var resuming: Bool
        var continuation: CheckedContinuation<Bool, Never>

        func precedes(_ other: Waiter) -> Bool {
            (rank, id) < (other.rank, other.id)
        }
    }

    private struct State {
        var available: Int
        var closed = false
        var waiters: [Waiter] = []
        var nextID = 0
        /// The last permit handed to a waiter went to a resuming message.
        var lastWentToResuming = false

        /// The index of the waiter a freed permit goes to: the first of the class whose turn it is
        /// (resuming or new, in turn while both wait) by rank, then the longest waiting.
        mutating func next() -> Int? {
            var best: (resuming: Int?, new: Int?)
            for index in waiters.indices {
                if waiters[index].resuming {
                    if best.resuming.map({ waiters[index].precedes(waiters[$0]) }) ?? true { best.resuming = index }
                } else if best.new.map({ waiters[index].precedes(waiters[$0]) }) ?? true {
                    best.new = index
                }
            }
            guard let chosen = lastWentToResuming ? best.new ?? best.resuming : best.resuming ?? best.new else { return nil }
            lastWentToResuming = waiters[chosen].resuming
            return chosen
        }
    }

    private let state: Mutex<State>

    init(_ count: Int) {
        state = Mutex(State(available: max(1, count)))
    }

    /// Takes a permit for a message of lane `rank` (0 most urgent), `resuming` after a wait; false
    /// when closed (or the task is cancelled) first.
    func acquire(rank: Int = 0, resuming: Bool = false) async -> Bool {
        let fast: Bool? = state.withLock { state in
            if state.closed { return false }
            if state.available > 0, state.waiters.isEmpty {
                state.available -= 1
                return true
            }
            return nil
        }
        if let fast { return fast }
        let id = state.withLock { state -> Int in
            defer { state.nextID += 1 }
            return state.nextID
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                let immediate: Bool? = state.withLock { state in
                    if state.closed || Task.isCancelled { return false }
                    if state.available > 0, state.waiters.isEmpty {
                        state.available -= 1
                        return true
                    }
                    state.waiters.append(Waiter(id: id, rank: rank, resuming: resuming, continuation: continuation))
                    return nil
                }
                if let immediate { continuation.resume(returning: immediate) }
            }
        } onCancel: {
            let waiter = state.withLock { state -> CheckedContinuation<Bool, Never>? in
                guard let index = state.waiters.firstIndex(where: { $0.id == id }) else { return nil }
                return state.waiters.remove(at: index).continuation
            }
            waiter?.resume(returning: false)
        }
    }

    /// How many wait for a permit now.
    var waiting: Int { state.withLock { $0.waiters.count } }

    /// Returns a permit, handing it to the next waiter (`State.next()`) if there is one.
    func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if !state.closed, let index = state.next() { return state.waiters.remove(at: index).continuation }
            state.available += 1
            return nil
        }
        next?.resume(returning: true)
    }

    /// Turns away every waiter now and every later `acquire`.
    func close() {
        let waiters = state.withLock { state -> [CheckedContinuation<Bool, Never>] in
            state.closed = true
            defer { state.waiters.removeAll() }
            return state.waiters.map(\.continuation)
        }
        waiters.forEach { $0.resume(returning: false) }
    }
}
