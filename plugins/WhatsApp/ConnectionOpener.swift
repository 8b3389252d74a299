import PipelineKit
import Synchronization

/// Lets one send at a time open the connection to the Cloud API, so that the sends queued behind a
/// connection being opened do not all go out together the moment it opens (SPEC 8: at most the
/// sender's limit in any one-second window).
///
/// While no connection is known to be open — before the first answer, after a send found none open
/// (it could not open one, or the one it had broke), or once an idle connection may have been
/// closed — a request waits inside
/// async-http-client for a connection to be opened (TCP, TLS: 100 ms and more to Meta), and every
/// request of the sender's pace that comes meanwhile waits with it: over HTTP/2 for the one
/// connection, over HTTP/1.1 for the several it opens at once. When they open, all of them go in the
/// same millisecond, a set-up's worth of slots on top of the second that follows. Seen on this
/// machine at start-up: 201 and 202 requests in one second at a limit of 200, paced at 190/s. So the first
/// send opens the connection alone (`.opening`); a send that comes meanwhile waits until a send
/// found a connection open, or the opening one ended (`.waited`): its slot is past, and it takes a
/// new turn, which keeps the pace. Over HTTP/1.1, "open" is one connection: the pool still opens
/// more as sends overlap, each one send's wait, not a burst.
///
/// ```swift
/// let entry = await opener.enter()
/// guard entry != .waited else { throw … }  // not sent: take a new turn
/// var connectionOpen = false
/// defer { opener.ended(entry, connectionOpen: connectionOpen) }
/// connectionOpen = … // answered (any status), or written and then timed out
/// ```
final class ConnectionOpener: Sendable {
    /// How a send goes.
    enum Entry: Sendable, Equatable {
        /// A connection is open: send.
        case open
        /// None is known to be open, and this send opens one.
        case opening
        /// Another send was opening one while this one waited: not sent, take a new turn.
        case waited
    }

    private struct State {
        /// A connection is open until then (the last send that found one open, plus `openFor`).
        var openUntil: ContinuousClock.Instant?
        var opening = false

        /// Whether a connection is known to be open at `now`.
        func isOpen(at now: ContinuousClock.Instant) -> Bool {
            openUntil.map { now < $0 } ?? false
        }
    }

    /// How long a connection is taken as open after a send found it open.
    let openFor: Duration
    private let state = Mutex(State())
    private let waiters = Waiters()

    init(openFor: Duration) {
        self.openFor = openFor
    }

    /// Sends waiting for the one opening the connection.
    var waiting: Int { waiters.count }

    /// How this send goes; while another send opens the connection, returns (`.waited`) once a
    /// connection is open or the opening send ended, or when the task is cancelled.
    func enter() async -> Entry {
        let now = ContinuousClock.now
        let entry = state.withLock { state -> Entry in
            if state.isOpen(at: now) { return .open }
            if state.opening { return .waited }
            state.opening = true
            return .opening
        }
        if entry == .waited {
            await waiters.wait(unless: { state.withLock { !$0.opening || $0.isOpen(at: .now) } })
        }
        return entry
    }

    /// The send that entered as `entry` ended, having found a connection open (answered, or
    /// written and then timed out) or not (it could not open one, or the one it had broke). The
    /// sends waiting go on (to take new turns) once a connection is open, or the opening send ended.
    func ended(_ entry: Entry, connectionOpen: Bool) {
        let now = ContinuousClock.now
        state.withLock { state in
            state.openUntil = connectionOpen ? now + openFor : nil
            if entry == .opening { state.opening = false }
        }
        if connectionOpen || entry == .opening { waiters.resumeAll() }
    }
}
