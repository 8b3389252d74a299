import Synchronization

/// The bytes of POST bodies being received and not yet checked (size, signature, JSON), bounded:
/// anyone who reaches the port can send large bodies slowly, or stall in the middle, before a
/// signature says who they are — without a bound, a few hundred such connections take the worker's
/// memory. A POST reserves each part of its body as it arrives — what a connection declares and
/// does not send holds nothing — until the body is read; a part beyond the bound ends the POST
/// with 503 (Meta delivers it again later). A part is always let in when nothing is being read.
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

    /// Reserves `bytes` of a body that arrived; `release` them once the body is read.
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
