import AsyncHTTPClient
import Synchronization

/// Each sender's request without its body — URL parsed, path and headers set — made once and
/// reused: parsing the URL for every send cost about 6 µs a message (Benchmarks/HISTORY.md, "Where the time goes
/// now"). A send copies its sender's head and sets the body.
///
/// Holds at most `capacity` senders: a default token accepts any sender id a message names, so the
/// set of senders is not bounded by the configuration. Beyond it, a head is made for each send.
/// The heads live as long as the client, which a pipeline reload replaces (new tokens, a new URL).
final class SenderRequestHeads: Sendable {
    private let heads = Mutex<[String: HTTPClient.Request]>([:])
    private let capacity: Int

    init(capacity: Int = 256) {
        self.capacity = capacity
    }

    /// `sender`'s head, made by `make` the first time (and every time once full).
    func head(for sender: String, make: () throws -> HTTPClient.Request) rethrows -> HTTPClient.Request {
        if let head = heads.withLock({ $0[sender] }) { return head }
        let head = try make()
        heads.withLock { heads in
            if heads.count < capacity { heads[sender] = head }
        }
        return head
    }

    /// How many senders have a head kept (for tests).
    var count: Int { heads.withLock { $0.count } }
}
