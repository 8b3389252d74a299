import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization
import TestSupport

/// The Cloud API stand-in: answers every POST with a wamid and records when each recipient's
/// request arrived; for the soak it can fail one request in `failEvery` with a transient error.
final class StandIn: Sendable {
    private struct To: Decodable { var to: String }
    private struct State {
        var arrivals: [(Int, UInt64)] = []
        var sent: [Int: Int] = [:]
        var requests = 0
        var failEvery: Int?
        var failed = 0
    }

    private let state = Mutex(State())

    /// A wamid of Meta's length and shape (`wamid.HBgL…`, 58 characters), distinct per request.
    static func wamid(_ request: Int) -> String {
        "wamid.HBgLNTUxMTk4NzY1NDMyMRUCABEYEj" + String(format: "%022X", request)
    }

    func reset() { state.withLock { $0 = State(failEvery: $0.failEvery) } }
    var snapshot: [(Int, UInt64)] { state.withLock { $0.arrivals } }
    var count: Int { state.withLock { $0.arrivals.count } }
    /// Successful sends by recipient number.
    var sent: [Int: Int] { state.withLock { $0.sent } }
    /// Requests answered with a transient failure.
    var failed: Int { state.withLock { $0.failed } }

    /// Fails every `n`th request with HTTP 503 and code 131000 (nil: none).
    func fail(every n: Int?) { state.withLock { $0.failEvery = n } }

    /// Starts listening on a free loopback port over `transport`; returns the base URL.
    func start(_ transport: StandInTransport = .plain) async throws -> String {
        let router = Router()
        router.post("/:version/:phone/messages") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            let now = DispatchTime.now().uptimeNanoseconds
            let number = (try? JSONDecoder().decode(To.self, from: Data(body.readableBytesView))).flatMap { Int($0.to.dropFirst(6)) }
            let (fails, request) = self.state.withLock { state -> (Bool, Int) in
                state.requests += 1
                if let every = state.failEvery, state.requests % every == 0 {
                    state.failed += 1
                    return (true, state.requests)
                }
                if let number {
                    state.arrivals.append((number, now))
                    state.sent[number, default: 0] += 1
                }
                return (false, state.requests)
            }
            if fails {
                return Response(status: .serviceUnavailable, headers: [.contentType: "application/json"],
                                body: .init(byteBuffer: ByteBuffer(string: #"{"error":{"message":"(#131000) Something went wrong","code":131000}}"#)))
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"messaging_product":"whatsapp","messages":[{"id":"\#(Self.wamid(request))"}]}"#)))
        }
        // An OTLP/HTTP collector that takes the worker's spans (`scripts/bench tracing`) and keeps nothing.
        router.post("/v1/traces") { request, _ -> Response in
            _ = try await request.body.collect(upTo: 64 << 20)
            return Response(status: .ok, headers: [.contentType: "application/x-protobuf"], body: .init(byteBuffer: ByteBuffer()))
        }
        let (ports, sink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, server: try transport.server(), configuration: .init(address: .hostname("127.0.0.1", port: 0)),
                              onServerRunning: { sink.yield($0.localAddress?.port ?? 0) }, logger: Logger(label: "standin"))
        Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        return transport.baseURL(port: await iterator.next() ?? 0)
    }
}
