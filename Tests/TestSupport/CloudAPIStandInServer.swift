import Foundation
import Hummingbird
import NIOCore
import PipelineKit
import Synchronization

/// A local HTTP server standing in for the WhatsApp Cloud API: records every
/// request and answers as scripted (success, any error code, stalls, malformed bodies).
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
    }

    /// How to answer one request.
    public enum Answer: Sendable {
        case success
        case error(status: Int, code: Int?, message: String)
        case stall(Duration)
        case raw(status: Int, body: String)
    }

    struct Context: RequestContext {
        var coreContext: CoreRequestContextStorage
        let clientPort: Int?

        init(source: ApplicationRequestContextSource) {
            coreContext = .init(source: source)
            clientPort = source.channel.remoteAddress?.port
        }
    }

    private let recorded = Mutex<[Recorded]>([])
    private let script = Mutex<@Sendable (Int, JSONValue?) -> Answer>({ _, _ in .success })
    private let task = Mutex<Task<Void, any Error>?>(nil)

    public init() {}

    /// Starts listening on a free loopback port; returns the base URL.
    public func start() async throws -> String {
        let router = Router(context: Context.self)
        router.post("/:version/:phone/messages") { request, context in
            try await self.answer(request, context)
        }
        let (portStream, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { channel in
            portSink.yield(channel.localAddress?.port ?? 0)
        })
        task.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        var iterator = portStream.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw TestFailure("stand-in did not start") }
        return "http://127.0.0.1:\(port)"
    }

    public func stop() {
        task.withLock { $0?.cancel() }
    }

    /// Sets how the following requests are answered: given the request number (from 1) and its JSON body.
    public func answer(with script: @escaping @Sendable (Int, JSONValue?) -> Answer) {
        self.script.withLock { $0 = script }
    }

    public var requests: [Recorded] { recorded.withLock { $0 } }

    /// The number of requests per recipient (`to`).
    public var countsByRecipient: [String: Int] {
        requests.reduce(into: [:]) { counts, request in
            counts[request.json?["to"]?.stringValue ?? "?", default: 0] += 1
        }
    }

    private func answer(_ request: Request, _ context: Context) async throws -> Response {
        let body = try await request.body.collect(upTo: 1 << 20)
        let bytes = Array(body.readableBytesView)
        let json = try? JSONValue(parsing: bytes)
        let number = recorded.withLock { list in
            list.append(Recorded(path: request.uri.path, authorization: request.headers[.authorization], body: bytes, json: json, clientPort: context.clientPort, receivedAt: Date()))
            return list.count
        }
        let answer = script.withLock { $0 }(number, json)
        switch answer {
        case .success:
            return Self.json(200, #"{"messaging_product":"whatsapp","contacts":[{"input":"x","wa_id":"x"}],"messages":[{"id":"wamid.standin.\#(number)"}]}"#)
        case .error(let status, let code, let message):
            let codeText = code.map(String.init) ?? "null"
            return Self.json(status, #"{"error":{"message":"\#(message)","type":"OAuthException","code":\#(codeText),"error_data":{"details":"\#(message)"},"fbtrace_id":"trace"}}"#)
        case .stall(let duration):
            try await Task.sleep(for: duration)
            return Self.json(200, #"{"messages":[{"id":"wamid.late.\#(number)"}]}"#)
        case .raw(let status, let body):
            return Self.json(status, body)
        }
    }

    private static func json(_ status: Int, _ body: String) -> Response {
        Response(status: .init(code: status), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }
}
