import Foundation
import Hummingbird
import NIOCore
import PipelineKit
import Synchronization

/// A local HTTP server standing in for the WhatsApp Cloud API: records every
/// request and answers as scripted (success, any error code, stalls, malformed bodies),
/// and can enforce Meta's throughput limit per phone number (130429 beyond it).
public final class CloudAPIStandInServer: Sendable {
    /// One request as received.
    public struct Recorded: Sendable {
        public var path: String
        public var authorization: String?
        public var body: [UInt8]
        public var json: JSONValue?
        /// The client's port: requests sharing one came over one kept-alive connection.
        public var clientPort: Int?
        public var receivedAt: Date
        /// When it arrived, on the monotonic clock (for rates).
        public var arrived: ContinuousClock.Instant
        /// The error code it was answered with; nil for a success.
        public var answeredCode: Int?

        /// The sender phone number id of the path (`/v24.0/{id}/messages`).
        public var sender: String { path.split(separator: "/").dropFirst().first.map(String.init) ?? "" }
        public var recipient: String { json?["to"]?.stringValue ?? "?" }
        public var succeeded: Bool { answeredCode == nil }
    }

    /// How to answer one request.
    public enum Answer: Sendable {
        case success
        case error(status: Int, code: Int?, message: String)
        /// Waits `Duration` after reading the request, then succeeds (a client with a shorter timeout has given up).
        case stall(Duration)
        /// `body` as `application/json`, whatever it is.
        case raw(status: Int, body: String)
        /// `body` as `text/html`: what a proxy or a wrong `base_url` answers.
        case html(status: Int, body: String)
        /// Reads the whole request, then closes the connection without answering (over HTTP/2, resets
        /// the stream): the request counts as accepted, its answer lost.
        case hangUp
        /// Reads the whole request, then closes the connection without answering: the answer lost and
        /// the request not accepted (Meta never took it: no status follows).
        case drop
        /// A success whose answer breaks off: status 200 and its headers (a `Content-Length` for the
        /// whole body), half of the body, then the connection closes (over HTTP/2, the stream is reset).
        case cutOff
        /// Waits `Duration` after reading the request, then answers as the other answer says (so
        /// several requests are in flight at once when they fail).
        indirect case after(Duration, Answer)
    }

    struct Context: RequestContext {
        var coreContext: CoreRequestContextStorage
        let clientPort: Int?
        /// The request's channel (over HTTP/2, its stream's), to hang up on.
        let channel: any Channel

        init(source: ApplicationRequestContextSource) {
            coreContext = .init(source: source)
            clientPort = source.channel.remoteAddress?.port
            channel = source.channel
        }
    }

    /// Ends a response that must not complete.
    private struct HungUp: Error {}

    /// A request the stand-in accepted, as Meta's status webhooks describe it.
    public struct Accepted: Sendable {
        public var wamid: String
        /// Its `biz_opaque_callback_data` (the message's internalId).
        public var callbackData: String?
        public var recipient: String
        public var sender: String
    }

    /// The code `answeredCode` holds for a request dropped without being accepted.
    public static let droppedCode = -1

    private let recorded = Mutex<[Recorded]>([])
    /// A closure kept in a `Mutex` directly is re-abstracted (wrapped in a thunk) each time `withLock`
    /// hands it out, and the wrapped closure is stored back: every request added two thunks to the
    /// next call, so answering cost grew with the requests answered (60 % of the process's CPU at
    /// 6,000 requests). Held in a struct, it is stored and called as it is.
    private struct Script: Sendable {
        var answer: @Sendable (Int, Recorded) -> Answer
    }

    private struct AcceptedHandler: Sendable {
        var handle: @Sendable (Accepted) -> Void
    }

    private let script = Mutex(Script { _, _ in .success })
    private let task = Mutex<Task<Void, any Error>?>(nil)
    private let pausedTemplates = Mutex<Set<String>>([])
    private let acceptedHandler = Mutex<AcceptedHandler?>(nil)
    /// Sends accepted per sender, for the throughput limit (arrival times within the last second).
    private let accepted = Mutex<(limit: Int?, bySender: [String: [ContinuousClock.Instant]])>((nil, [:]))

    /// Distinct per stand-in, as Meta's wamids are unique: the statuses posted for one never meet
    /// what the shared test Redis keeps (7 days) of another's.
    private let run = UUID().uuidString.prefix(8).lowercased()

    public init() {}

    /// The wamid the stand-in answers request `number` (from 1) with.
    public func wamid(_ number: Int) -> String { "wamid.standin.\(run).\(number)" }

    /// Starts listening on a free loopback port; returns the base URL.
    public func start(_ transport: StandInTransport = .plain) async throws -> String {
        let router = Router(context: Context.self)
        router.post("/:version/:phone/messages") { request, context in
            try await self.answer(request, context)
        }
        let (portStream, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, server: try transport.server(), configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { channel in
            portSink.yield(channel.localAddress?.port ?? 0)
        })
        task.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        var iterator = portStream.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw TestFailure("stand-in did not start") }
        return transport.baseURL(port: port)
    }

    public func stop() {
        task.withLock { $0?.cancel() }
    }

    /// Calls `handler` for every request accepted from now on (answered with success, or accepted with
    /// its answer lost), as Meta would post statuses for it: the tests post them to the statuses pipeline.
    public func onAccepted(_ handler: @escaping @Sendable (Accepted) -> Void) {
        acceptedHandler.withLock { $0 = AcceptedHandler(handle: handler) }
    }

    /// Sets how the following requests are answered: given the request number (from 1) and its JSON body.
    public func answer(with script: @escaping @Sendable (Int, JSONValue?) -> Answer) {
        self.script.withLock { $0 = Script { number, request in script(number, request.json) } }
    }

    /// Sets how the following requests are answered, given each request as recorded (path, sender, token…).
    public func answerRequests(with script: @escaping @Sendable (Recorded) -> Answer) {
        self.script.withLock { $0 = Script { _, request in script(request) } }
    }

    /// Answers 130429 to a sender's request when `perSecond` of its requests were accepted in the
    /// second before it (a sliding window, as Meta counts); nil lifts the limit.
    public func enforceThroughput(perSecond: Int?) {
        accepted.withLock { $0 = (perSecond, [:]) }
    }

    /// Refuses sends of template `name` with `132015` (paused), as Meta does, until `approveTemplate`.
    public func pauseTemplate(_ name: String) {
        _ = pausedTemplates.withLock { $0.insert(name) }
    }

    public func approveTemplate(_ name: String) {
        _ = pausedTemplates.withLock { $0.remove(name) }
    }

    public var requests: [Recorded] { recorded.withLock { $0 } }

    /// The number of requests per recipient (`to`).
    public var countsByRecipient: [String: Int] {
        requests.reduce(into: [:]) { counts, request in
            counts[request.recipient, default: 0] += 1
        }
    }

    /// The number of successful sends per recipient.
    public var sentByRecipient: [String: Int] {
        requests.filter(\.succeeded).reduce(into: [:]) { counts, request in
            counts[request.recipient, default: 0] += 1
        }
    }

    /// Requests answered with `code`.
    public func answered(_ code: Int) -> Int {
        requests.filter { $0.answeredCode == code }.count
    }

    /// The most requests of `sender` (all when nil) that arrived within any window of `window`.
    public func mostInAnyWindow(_ window: Duration = .seconds(1), sender: String? = nil) -> Int {
        let times = requests.filter { sender == nil || $0.sender == sender }.map(\.arrived).sorted()
        var most = 0
        var start = 0
        for end in times.indices {
            while times[end] - times[start] >= window { start += 1 }
            most = max(most, end - start + 1)
        }
        return most
    }

    private func answer(_ request: Request, _ context: Context) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        let bytes = Array(body.readableBytesView)
        let json = try? JSONValue(parsing: bytes)
        let arrived = ContinuousClock.now
        let path = request.uri.path
        let sender = path.split(separator: "/").dropFirst().first.map(String.init) ?? ""
        let overLimit = accepted.withLock { state -> Bool in
            guard let limit = state.limit else { return false }
            var times = state.bySender[sender, default: []]
            times.removeAll { arrived - $0 >= .seconds(1) }
            let over = times.count >= limit
            if !over { times.append(arrived) }
            state.bySender[sender] = times
            return over
        }
        let entry = Recorded(path: path, authorization: request.headers[.authorization], body: bytes, json: json, clientPort: context.clientPort,
                             receivedAt: Date(), arrived: arrived, answeredCode: nil)
        let number = recorded.withLock { list in
            list.append(entry)
            return list.count
        }
        let paused = json?["template"]?["name"]?.stringValue.map { name in pausedTemplates.withLock { $0.contains(name) } } ?? false
        var answer: Answer = if overLimit {
            .error(status: 400, code: 130429, message: "(#130429) Rate limit hit")
        } else if paused {
            .error(status: 400, code: 132015, message: "(#132015) Cannot send message as the template is paused due to low quality")
        } else {
            script.withLock { $0 }.answer(number, entry)
        }
        while case .after(let delay, let then) = answer {
            try await Task.sleep(for: delay)
            answer = then
        }
        let code: Int? = switch answer {
        case .success, .stall, .hangUp, .cutOff, .after: nil
        case .drop: Self.droppedCode
        case .error(_, let code, _): code ?? 0
        case .raw(let status, _), .html(let status, _): (200..<300).contains(status) ? nil : 0
        }
        if let code { recorded.withLock { $0[number - 1].answeredCode = code } }
        let wamid = self.wamid(number)
        if code == nil, let handler = acceptedHandler.withLock({ $0 }) {
            handler.handle(Accepted(wamid: wamid, callbackData: json?["biz_opaque_callback_data"]?.stringValue, recipient: entry.recipient, sender: entry.sender))
        }
        switch answer {
        case .success:
            return Self.json(200, #"{"messaging_product":"whatsapp","contacts":[{"input":"x","wa_id":"x"}],"messages":[{"id":"\#(wamid)"}]}"#)
        case .error(let status, let code, let message):
            let codeText = code.map(String.init) ?? "null"
            return Self.json(status, #"{"error":{"message":"\#(message)","type":"OAuthException","code":\#(codeText),"error_data":{"details":"\#(message)"},"fbtrace_id":"trace"}}"#)
        case .stall(let duration):
            try await Task.sleep(for: duration)
            return Self.json(200, #"{"messages":[{"id":"\#(wamid)"}]}"#)
        case .raw(let status, let body):
            return Self.json(status, body)
        case .html(let status, let body):
            return Response(status: .init(code: status), headers: [.contentType: "text/html; charset=utf-8"], body: .init(byteBuffer: ByteBuffer(string: body)))
        case .hangUp, .drop:
            try? await context.channel.close()
            throw HungUp()
        case .cutOff:
            let body = Array(#"{"messaging_product":"whatsapp","contacts":[{"input":"x","wa_id":"x"}],"messages":[{"id":"\#(wamid)"}]}"#.utf8)
            let half = ByteBuffer(bytes: body.prefix(body.count / 2))
            let channel = context.channel
            return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(contentLength: body.count) { writer in
                try await writer.write(half)
                // Let the head and the half reach the client before the connection closes.
                try await Task.sleep(for: .milliseconds(100))
                try? await channel.close()
                throw HungUp()
            })
        case .after:
            preconditionFailure("waited for above")
        }
    }

    private static func json(_ status: Int, _ body: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
