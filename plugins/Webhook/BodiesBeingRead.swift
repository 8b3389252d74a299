import Synchronization

/// The bytes of POST bodies being received and not yet checked (size, signature, JSON), bounded:
/// anyone who reaches the port can send large bodies slowly, or stall in the middle, before a
/// signature says who they are — without a bound, a few hundred such connections take the worker's
/// memory. Each POST reserves what its `Content-Length` says (the largest body allowed without one)
/// before its body is read; beyond the bound a POST is answered 503 unread (Meta delivers it
/// again later). One POST is always let in when none is being read, whatever its size.
final class BodiesBeingRead: Sendable {
    enum Reservation: Equatable {
        case reserved
        /// Refused: the bound is reached; `starting` for the first refusal since one was let in (to log once).
        case refused(starting: Bool)
    }

    private let limit: Int
    private let state = Mutex<(bytes: Int, refusing: Bool)>((0, false))

    init(limit: Int) {
        self.limit = limit
    }

    /// Reserves `bytes` for a body about to be read; `release` them once it is read.
    func reserve(_ bytes: Int) -> Reservation {
        state.withLock { state in
            guard state.bytes == 0 || state.bytes + bytes <= limit else {
                defer { state.refusing = true }
                return .refused(starting: !state.refusing)
            }
            state.bytes += bytes
            state.refusing = false
            return .reserved
        }
    }

    /// Bytes reserved now.
    var bytes: Int { state.withLock { $0.bytes } }

    func release(_ bytes: Int) {
        state.withLock { $0.bytes -= bytes }
    }
}
