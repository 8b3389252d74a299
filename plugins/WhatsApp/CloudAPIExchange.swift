import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// One request to the Cloud API as async-http-client reports it, step by step, to its
/// `HTTPClientResponseDelegate`: the request fully written, the answer's head, its body. What had
/// happened when a request failed tells *not sent* from *in doubt* from *sent* (SPEC 13), whatever
/// the error's type:
///
/// - the body's last byte handed to the connection (`didSendRequestPart`, called when a part's write
///   promise succeeds) or the request's end (`didSendRequest`): the Cloud API can have the whole
///   request. Before that: not sent.
/// - after it and before `didReceiveHead`: in doubt.
/// - after a 2xx head: sent, even if the body never completes.
///
/// The body counts, not only the end: over HTTP/1.1 the end of a body with a `Content-Length` is no
/// byte at all, and async-http-client writes it in a task of its own after the body
/// (`RequestBag.finishRequestBodyStream` hops to the connection's event loop). A Cloud API that
/// read the body and closed the connection at once can be seen closed before that task runs: the
/// end's write then fails and `didSendRequest` never comes — yet the request was whole and may have
/// been accepted. Taken as not sent, it would be released and sent again (a duplicate seen in CI).
///
/// Those callbacks and a failure that starts at the connection (closed, reset, read timeout) reach
/// the delegate in the order they happened: both hop to the task's event loop. A deadline or a
/// cancellation fails the request on the task's loop at once (`RequestBag.deadlineExceeded0`,
/// `cancel`), while body writes already handed to the connection's loop still go out: after the
/// head was written (`didSendRequestHead`), such a failure is in doubt too. Write callbacks that come
/// after the failure (`didReceiveError`) change nothing: async-http-client reports a head written
/// for a request that failed meanwhile (a deadline as a connection took it), and no body follows.
///
/// async-http-client calls the delegate on the task's event loop, one call at a time; the lock is
/// never contended and makes the state readable from the awaiting task once the request ended.
/// (With the client on one event loop, `CloudAPIEventLoop`, the task's loop is the connection's and
/// nothing hops; the rules stay: over TLS, HTTP/2 or a full socket a body part can still be written
/// and reported before the end's write fails.)
final class CloudAPIExchange: HTTPClientResponseDelegate, Sendable {
    /// A complete answer.
    struct Answer: Sendable {
        var status: Int
        var headers: HTTPHeaders
        /// The body, or its first `maxBody` bytes when `truncated`.
        var body: ByteBuffer
        var truncated: Bool
    }

    /// How far a request went before it failed.
    struct Progress: Sendable {
        /// The whole request was written to the connection.
        var written: Bool
        /// The status of the answer's head, when one came.
        var status: Int?
    }

    /// The most of an answer's body kept; the rest is dropped (no Cloud API answer comes near it).
    static let maxBody = 1 << 20

    /// What the delegate was told so far: the delegate's calls as plain mutations, so the rules
    /// above can be tested in the order async-http-client makes them.
    struct Record: Sendable {
        /// The length of the request's body.
        let bodyBytes: Int
        private(set) var failed = false
        private(set) var headWritten = false
        private(set) var bodyBytesWritten = 0
        private(set) var ended = false
        private(set) var head: HTTPResponseHead?
        private(set) var body: ByteBuffer?
        private(set) var truncated = false

        init(bodyBytes: Int) {
            self.bodyBytes = bodyBytes
        }

        /// `didReceiveError`: the request failed; what is reported written after it is not counted.
        mutating func fail() { failed = true }
        /// `didSendRequestHead`: the request's head reached the connection.
        mutating func wroteHead() { if !failed { headWritten = true } }
        /// `didSendRequestPart`: `bytes` of the body reached the connection.
        mutating func wroteBodyPart(_ bytes: Int) { if !failed { bodyBytesWritten += bytes } }
        /// `didSendRequest`: the request's end reached the connection.
        mutating func wroteEnd() { if !failed { ended = true } }
        mutating func received(_ head: HTTPResponseHead) { self.head = head }

        mutating func received(bodyPart buffer: ByteBuffer) {
            let kept = body?.readableBytes ?? 0
            if kept + buffer.readableBytes > CloudAPIExchange.maxBody {
                truncated = true
            } else if body == nil {
                body = buffer  // the usual case: the whole answer in one part, not copied
            } else {
                body!.writeImmutableBuffer(buffer)
            }
        }

        /// How far the request went when it failed with `error`.
        func progress(failedWith error: any Error) -> Progress {
            let whole = ended || (bodyBytes > 0 && bodyBytesWritten >= bodyBytes)
            let endedBeforeTheConnection = [HTTPClientError.deadlineExceeded, .cancelled].contains(error as? HTTPClientError)
            return Progress(written: whole || (headWritten && endedBeforeTheConnection), status: head.map { Int($0.status.code) })
        }

        /// The complete answer; async-http-client finishes a request only after its head
        /// (`RequestBag` forwards the head first).
        func answer() throws(HTTPClientError) -> Answer {
            guard let head else { throw HTTPClientError.remoteConnectionClosed }
            return Answer(status: Int(head.status.code), headers: head.headers, body: body ?? ByteBuffer(), truncated: truncated)
        }
    }

    private let state: Mutex<Record>

    /// An exchange for a request whose body is `bodyBytes` long.
    init(bodyBytes: Int) {
        state = Mutex(Record(bodyBytes: bodyBytes))
    }

    /// How far the request went when it failed with `error`.
    func progress(failedWith error: any Error) -> Progress {
        state.withLock { $0.progress(failedWith: error) }
    }

    func didReceiveError(task: HTTPClient.Task<Answer>, _ error: any Error) {
        state.withLock { $0.fail() }
    }

    func didSendRequestHead(task: HTTPClient.Task<Answer>, _ head: HTTPRequestHead) {
        state.withLock { $0.wroteHead() }
    }

    func didSendRequestPart(task: HTTPClient.Task<Answer>, _ part: IOData) {
        state.withLock { $0.wroteBodyPart(part.readableBytes) }
    }

    func didSendRequest(task: HTTPClient.Task<Answer>) {
        state.withLock { $0.wroteEnd() }
    }

    func didReceiveHead(task: HTTPClient.Task<Answer>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        state.withLock { $0.received(head) }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Answer>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        state.withLock { $0.received(bodyPart: buffer) }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<Answer>) throws -> Answer {
        try state.withLock { state throws(HTTPClientError) in try state.answer() }
    }
}
