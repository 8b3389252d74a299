import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import PipelineKit
import Synchronization

/// The `whatsapp_webhook` source: Meta's webhook callbacks over HTTP. A verification `GET`
/// answers the challenge; a `POST` is checked (size → 413, signature → 401, a JSON object → 400)
/// and becomes one delivery, answered 200 only once its outcome is settled — its events
/// confirmed by the broker — and 503 otherwise, so Meta retries.
public final class WebhookSource: Source {
    /// The handler's wait for its delivery's settlement.
    struct Receipt: Sendable {
        let answer: @Sendable (HTTPResponse.Status) -> Void
    }

    public let events: AsyncStream<SourceEvent>
    public let capacity: Int
    private let continuation: AsyncStream<SourceEvent>.Continuation
    private let settings: WebhookSettings
    private let signature: WebhookSignature
    private let logger: Logger
    private let accepting = Atomic<Bool>(false)
    private let listening = Atomic<Bool>(false)
    private let server = Mutex<Task<Void, any Error>?>(nil)

    init(settings: WebhookSettings, worker: WorkerConfiguration, logger: Logger) {
        self.settings = settings
        signature = WebhookSignature(appSecret: settings.appSecret)
        capacity = worker.concurrency * 2
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: SourceEvent.self)
    }

    public func start() async throws {
        let router = Router()
        router.get(RouterPath(settings.path)) { request, _ in self.verify(request) }
        router.post(RouterPath(settings.path)) { request, _ in await self.receive(request) }
        let (started, startedSink) = AsyncStream.makeStream(of: Bool.self)
        let app = Application(router: router, configuration: .init(address: .hostname("0.0.0.0", port: settings.port), serverName: "outbound-worker-webhook"),
                              onServerRunning: { _ in startedSink.yield(true) }, logger: logger)
        let task = Task {
            do {
                try await app.runService(gracefulShutdownSignals: [])
            } catch {
                startedSink.yield(false)
                throw error
            }
        }
        server.withLock { $0 = task }
        var iterator = started.makeAsyncIterator()
        guard await iterator.next() == true else {
            throw WebhookError("cannot listen on port \(settings.port): \((await task.result).failureDescription)")
        }
        listening.store(true, ordering: .releasing)
        accepting.store(true, ordering: .releasing)
        continuation.yield(.connected("http://0.0.0.0:\(settings.port)\(settings.path)"))
    }

    public func settle(_ delivery: Delivery, _ settlement: Settlement) async -> Bool {
        guard let receipt = delivery.receipt as? Receipt else { return false }
        switch settlement {
        case .ack, .deadLetter:
            // A body nothing can be made of is not worth Meta's retries: taken, logged and counted by the runtime.
            receipt.answer(.ok)
        case .release, .redeliver:
            receipt.answer(.serviceUnavailable)
        }
        // (`WebhookAdmission.status(for:)` answers the same for decisions, in pipeline tests.)
        return true
    }

    public func pause() { accepting.store(false, ordering: .releasing) }
    public func resume() { accepting.store(true, ordering: .releasing) }

    public func stopIntake() {
        accepting.store(false, ordering: .releasing)
        continuation.yield(.intakeStopped)
    }

    public func stop() async {
        accepting.store(false, ordering: .releasing)
        listening.store(false, ordering: .releasing)
        let task = server.withLock { $0 }
        task?.cancel()
        _ = await task?.result
        continuation.finish()
    }

    public func status() -> SourceStatus {
        SourceStatus(connected: listening.load(ordering: .acquiring), consuming: accepting.load(ordering: .acquiring))
    }

    /// `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C` → C when T is the verify token.
    private func verify(_ request: Request) -> Response {
        let query = request.uri.queryParameters
        guard query["hub.mode"].map(String.init) == "subscribe", let token = query["hub.verify_token"].map(String.init),
              Self.constantTimeEqual(Array(token.utf8), Array(settings.verifyToken.utf8)), let challenge = query["hub.challenge"] else {
            return Response(status: .forbidden)
        }
        return Response(status: .ok, headers: [.contentType: "text/plain"], body: .init(byteBuffer: ByteBuffer(string: String(challenge))))
    }

    private func receive(_ request: Request) async -> Response {
        var request = request
        let body: [UInt8]
        do {
            // One byte over the limit is enough to know it is too large.
            body = Array(try await request.collectBody(upTo: settings.maxBodyBytes + 1).readableBytesView)
        } catch {
            Self.rejected(413).increment()
            return Response(status: .contentTooLarge)
        }
        let header = request.headers.first { $0.name.canonicalName == "x-hub-signature-256" }?.value
        if let refusal = WebhookAdmission.check(body, signatureHeader: header, settings: settings, signature: signature) {
            Self.rejected(refusal.status).increment()
            logger.warning("webhook POST refused", metadata: ["status": "\(refusal.status)", "reason": .string(refusal.reason)])
            return Response(status: HTTPResponse.Status(code: refusal.status))
        }
        guard accepting.load(ordering: .acquiring) else { return Response(status: .serviceUnavailable) }
        let status = await withCheckedContinuation { (answer: CheckedContinuation<HTTPResponse.Status, Never>) in
            let once = Mutex(Optional(answer))
            let receipt = Receipt { status in once.withLock { $0.take() }?.resume(returning: status) }
            if case .dropped = continuation.yield(.delivery(Delivery(body: body, firstSeen: Date(), receipt: receipt))) {
                receipt.answer(.serviceUnavailable)
            }
        }
        return Response(status: status)
    }

    private static func rejected(_ status: Int) -> Counter {
        Counter(label: "outbound_webhook_rejected_total", dimensions: [("status", String(status))])
    }

    private static func constantTimeEqual(_ lhs: [UInt8], _ rhs: [UInt8]) -> Bool {
        guard lhs.count == rhs.count else { return false }
        return zip(lhs, rhs).reduce(UInt8(0)) { $0 | ($1.0 ^ $1.1) } == 0
    }
}

struct WebhookError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension Result {
    fileprivate var failureDescription: String {
        if case .failure(let error) = self { return "\(error)" }
        return "the server stopped"
    }
}
