import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

/// The Cloud API stand-in: answers every POST with a wamid and records when each recipient's request arrived.
final class StandIn: Sendable {
    private struct To: Decodable { var to: String }
    private let arrivals = Mutex<[(Int, UInt64)]>([])

    func reset() { arrivals.withLock { $0.removeAll(keepingCapacity: true) } }
    var snapshot: [(Int, UInt64)] { arrivals.withLock { $0 } }
    var count: Int { arrivals.withLock { $0.count } }

    /// Starts listening on a free loopback port; returns the port.
    func start() async throws -> Int {
        let router = Router()
        router.post("/:version/:phone/messages") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            let now = DispatchTime.now().uptimeNanoseconds
            if let to = try? JSONDecoder().decode(To.self, from: Data(body.readableBytesView)), let number = Int(to.to.dropFirst(6)) {
                self.arrivals.withLock { $0.append((number, now)) }
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"messaging_product":"whatsapp","messages":[{"id":"wamid.bench"}]}"#)))
        }
        let (ports, sink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { sink.yield($0.localAddress?.port ?? 0) }, logger: Logger(label: "standin"))
        Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        return await iterator.next() ?? 0
    }
}
