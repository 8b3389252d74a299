import AsyncHTTPClient
import NIOCore
import NIOHTTP1
import Synchronization

/// One request to the Cloud API as async-http-client reports it, step by step, to its
/// `HTTPClientResponseDelegate`: the request fully written, the answer's head, its body. What had
/// happened when a request failed tells *not sent* from *in doubt* from *sent* (SPEC 13), whatever
/// the error's type:
///
/// - `didSendRequest` is called once the last byte of the request was handed to the connection:
///   async-http-client calls it when the write promise of the request's end succeeds
///   (`RequestBag.finishRequestBodyStream`, `.forwardStreamFinished`), never when a write failed.
///   Before it, the Cloud API cannot have the whole request: not sent.
/// - after it and before `didReceiveHead`: in doubt (its read timeout is armed only then —
///   `HTTPRequestStateMachine.idleReadTimeoutTriggered`: "We only schedule idle read timeouts after we
///   have sent the complete request").
/// - after a 2xx head: sent, even if the body never completes.
///
/// async-http-client calls the delegate on the task's event loop, one call at a time; the lock is
/// never contended and makes the state readable from the awaiting task once the request ended.
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

    private struct State {
        var written = false
        var head: HTTPResponseHead?
        var body: ByteBuffer?
        var truncated = false
    }

    private let state = Mutex(State())

    init() {}

    var progress: Progress {
        state.withLock { Progress(written: $0.written, status: $0.head.map { Int($0.status.code) }) }
    }

    func didSendRequest(task: HTTPClient.Task<Answer>) {
        state.withLock { $0.written = true }
    }

    func didReceiveHead(task: HTTPClient.Task<Answer>, _ head: HTTPResponseHead) -> EventLoopFuture<Void> {
        state.withLock { $0.head = head }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didReceiveBodyPart(task: HTTPClient.Task<Answer>, _ buffer: ByteBuffer) -> EventLoopFuture<Void> {
        state.withLock { state in
            let kept = state.body?.readableBytes ?? 0
            if kept + buffer.readableBytes > Self.maxBody {
                state.truncated = true
            } else if state.body == nil {
                state.body = buffer  // the usual case: the whole answer in one part, not copied
            } else {
                state.body!.writeImmutableBuffer(buffer)
            }
        }
        return task.eventLoop.makeSucceededVoidFuture()
    }

    func didFinishRequest(task: HTTPClient.Task<Answer>) throws -> Answer {
        try state.withLock { state throws(HTTPClientError) in
            // async-http-client finishes a request only after its head (`RequestBag` forwards the head first).
            guard let head = state.head else { throw HTTPClientError.remoteConnectionClosed }
            return Answer(status: Int(head.status.code), headers: head.headers, body: state.body ?? ByteBuffer(), truncated: state.truncated)
        }
    }
}
