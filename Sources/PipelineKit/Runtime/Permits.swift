import Synchronization

/// Bounded concurrency: `acquire` waits until one of `count` permits is free; a freed permit goes
/// first to a message whose wait has ended (`resuming`: its turn has come, its send slot is due),
/// then to a new delivery; each time to the most urgent lane waiting (lowest rank), first come,
/// first served within a lane; `close` turns every waiter and later caller away (shutdown).
///
/// Resuming messages first: new deliveries of a lane whose backlog waits — each taken in, given
/// its place in line and sent back to wait — would otherwise keep every permit while the turns of
/// another lane's messages came and went (a bulk lane kept under `max_share` got none of its
/// sends for seconds while 2,000 urgent messages were taken in). A resuming message holds its
/// permit for one send; a new urgent message waits for at most those already due.
final class Permits: Sendable {
    private struct Waiter {
        var id: Int
        var rank: Int
        var resuming: Bool
        var continuation: CheckedContinuation<Bool, Never>

        func precedes(_ other: Waiter) -> Bool {
            (resuming ? 0 : 1, rank, id) < (other.resuming ? 0 : 1, other.rank, other.id)
        }
    }

    private struct State {
        var available: Int
        var closed = false
        var waiters: [Waiter] = []
        var nextID = 0

        /// The index of the waiter a freed permit goes to: resuming first, then the lowest rank, then the longest waiting.
        var next: Int? {
            waiters.indices.min { waiters[$0].precedes(waiters[$1]) }
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

    /// Returns a permit, handing it to the most urgent waiter if there is one.
    func release() {
        let next = state.withLock { state -> CheckedContinuation<Bool, Never>? in
            if !state.closed, let index = state.next { return state.waiters.remove(at: index).continuation }
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
