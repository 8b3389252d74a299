import Foundation
import Hummingbird
import Logging
import Metrics
import NIOCore
import PipelineKit
import ServiceLifecycle
import Synchronization

/// The `whatsapp_webhook` source: Meta's webhook callbacks over HTTP. A verification `GET`
/// answers the challenge; a `POST` is checked (size → 413, signature → 401, a JSON object → 400)
/// and becomes one delivery, answered 200 only once its outcome is settled — its events
/// confirmed by the broker — and 503 otherwise, so Meta retries.
///
/// POSTs handed out wait for the pipeline with their bodies; beyond `max_pending_bytes` of them a
/// POST is answered 503 at once (Meta's retries are the backpressure), so a burst — Meta
/// delivering what it held back while the worker was down — cannot take the worker's memory.
///
/// Bodies being received are bounded too, before their signature is checked (`BodiesBeingRead`),
/// and a connection idle for `idleTimeout` while its request is read is closed.
///
/// Shutdown: after `stopIntake` a POST is answered 503 at once (the server keeps listening while
/// the runtime drains); `stop` answers 503 to any POST handed out that the runtime never settled,
/// then stops the server gracefully — requests in progress are answered, idle connections closed.
public final class WebhookSource: Source {
    /// The handler's wait for its delivery's settlement.
    struct Receipt: Sendable {
        /// Names the POST among those handed out.
        let id: String
        /// Its body's size.
        let bytes: Int
        let answer: @Sendable (HTTPResponse.Status) -> Void
    }

    /// Whether POSTs become deliveries, and those handed out and not settled yet.
    private struct Intake {
        enum Phase { case starting, open, stopped }
        /// Why a POST is not handed out; `starting`: the first refusal for `max_pending_bytes` since one was taken.
        enum Refusal { case closed, full(starting: Bool) }
        var phase = Phase.starting
        var paused = false
        var unsettled: [String: Receipt] = [:]
        /// The bodies of `unsettled`, in bytes.
        var pendingBytes = 0
        /// POSTs are being refused for `max_pending_bytes` (logged when it starts).
        var full = false

        var accepting: Bool { phase == .open && !paused }

        /// Hands `receipt`'s POST out, or says why not: one POST is taken whatever its size when none waits.
        mutating func admit(_ receipt: Receipt, maxPendingBytes: Int) -> Refusal? {
            guard accepting else { return .closed }
            guard unsettled.isEmpty || pendingBytes + receipt.bytes <= maxPendingBytes else {
                defer { full = true }
                return .full(starting: !full)
            }
            unsettled[receipt.id] = receipt
            pendingBytes += receipt.bytes
            full = false
            return nil
        }

        mutating func settle(_ id: String) {
            guard let receipt = unsettled.removeValue(forKey: id) else { return }
            pendingBytes -= receipt.bytes
        }
    }

    /// The HTTP server: its own service group (not the worker's: it must go on answering while
    /// the runtime drains) and the task that runs it.
    private struct RunningServer {
        let group: ServiceGroup
        let task: Task<Void, any Error>
    }

    public let events: AsyncStream<SourceEvent>
    public let capacity: Int
    private let continuation: AsyncStream<SourceEvent>.Continuation
    private let settings: WebhookSettings
    private let signature: WebhookSignature
    private let logger: Logger
    private let intake = Mutex(Intake())
    private let beingRead: BodiesBeingRead
    private let listening = Atomic<Bool>(false)
    private let server = Mutex<RunningServer?>(nil)
    /// How long `stop` waits for requests in progress (a client still sending its body) before it closes their connections.
    static let quiesceTimeout = Duration.seconds(5)

    init(settings: WebhookSettings, worker: WorkerConfiguration, logger: Logger) {
        self.settings = settings
        signature = WebhookSignature(appSecret: settings.appSecret)
        capacity = worker.concurrency * 2
        beingRead = BodiesBeingRead(limit: settings.maxPendingBytes)
        self.logger = logger
        (events, continuation) = AsyncStream.makeStream(of: SourceEvent.self)
    }

    public func start() async throws {
        let router = Router()
        router.get(RouterPath(settings.path)) { request, _ in self.verify(request) }
        router.post(RouterPath(settings.path)) { request, _ in await self.receive(request) }
        let (started, startedSink) = AsyncStream.makeStream(of: Bool.self)
        let app = Application(router: router, server: .http1(configuration: .init(idleTimeout: Self.idleTimeout)),
                              configuration: .init(address: .hostname("0.0.0.0", port: settings.port), serverName: "outbound-worker-webhook"),
                              onServerRunning: { _ in startedSink.yield(true) }, logger: logger)
        let group = ServiceGroup(services: [app], gracefulShutdownSignals: [], cancellationSignals: [], logger: logger)
        // Detached: a task made here would inherit the worker's graceful shutdown, and the server
        // would stop listening at SIGTERM instead of answering 503 while the runtime drains.
        let task = Task.detached {
            defer { startedSink.finish() }
            try await group.run()
        }
        server.withLock { $0 = RunningServer(group: group, task: task) }
        var iterator = started.makeAsyncIterator()
        guard await iterator.next() == true else {
            throw WebhookError("cannot listen on port \(settings.port): \((await task.result).failureDescription)")
        }
        listening.store(true, ordering: .releasing)
        intake.withLock { state in
            if state.phase == .starting { state.phase = .open }
        }
        continuation.yield(.connected("http://0.0.0.0:\(settings.port)\(settings.path)"))
    }

    public func settle(_ delivery: Delivery, _ settlement: Settlement) async -> Bool {
        guard let receipt = delivery.receipt as? Receipt else { return false }
        intake.withLock { $0.settle(receipt.id) }
        switch settlement {
        case .ack:
            receipt.answer(.ok)
        case .deadLetter:
            // A body nothing can be made of is not worth Meta's retries: taken, logged and counted by the runtime.
            receipt.answer(.ok)
        case .release, .redeliver:
            receipt.answer(.serviceUnavailable)
        }
        // (`WebhookAdmission.status(for:)` answers the same for decisions, in pipeline tests.)
        return true
    }

    public func pause() { intake.withLock { $0.paused = true } }
    public func resume() { intake.withLock { $0.paused = false } }

    public func stopIntake() {
        // Under the lock `receive` hands deliveries out with: none follows `.intakeStopped`.
        intake.withLock { state in
            state.phase = .stopped
            continuation.yield(.intakeStopped)
        }
    }

    public func stop() async {
        let unsettled = intake.withLock { state -> [Receipt] in
            state.phase = .stopped
            defer { (state.unsettled, state.pendingBytes) = ([:], 0) }
            return Array(state.unsettled.values)
        }
        // Handed out and never settled (the runtime stopped reading): Meta delivers them again.
        for receipt in unsettled { receipt.answer(.serviceUnavailable) }
        if !unsettled.isEmpty {
            logger.warning("webhook POSTs the runtime did not settle were answered 503", metadata: ["count": "\(unsettled.count)"])
        }
        listening.store(false, ordering: .releasing)
        if let server = server.withLock({ $0 }) {
            // Every request taken is answered now: the server stops listening, writes those answers
            // and closes its connections; one still sending its body is cut off after a while.
            await server.group.triggerGracefulShutdown()
            let deadline = Task {
                try? await Task.sleep(for: Self.quiesceTimeout)
                if !Task.isCancelled { server.task.cancel() }
            }
            _ = await server.task.result
            deadline.cancel()
        }
        continuation.finish()
    }

    /// A POST whose events the broker refused is answered 503 at once: Meta delivers it again.
    public var keepsDeliveriesWhileOutcomesAreRefused: Bool { false }

    public func status() -> SourceStatus {
        SourceStatus(connected: listening.load(ordering: .acquiring), consuming: intake.withLock { $0.accepting })
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

    /// Bytes of bodies being received and not yet checked (for tests).
    var bytesBeingRead: Int { beingRead.bytes }

    /// How long a body of `bytes` may take to arrive: 5 s, and 1 s more for every 256 KiB, 30 s at
    /// most (a 1 MiB body 9 s; Meta's, a few KB, 5 s). One sent a byte at a time, never idle long
    /// enough for `idleTimeout`, would otherwise hold what it sent of the bodies being read for good;
    /// within it, holding the whole of `max_pending_bytes` takes sending about that much every few seconds.
    static func bodyDeadline(for bytes: Int) -> Duration {
        min(.seconds(30), .seconds(5) + .milliseconds(Int64(bytes) * 1000 / 262_144))
    }

    /// What reading a POST's body came to.
    enum BodyRead {
        case body([UInt8])
        /// More than the limit arrived (413).
        case tooLarge
        /// It did not arrive within its deadline (408).
        case tooSlow
        /// The bodies being read hold `max_pending_bytes` (503); `starting`: the first refusal since one was let in.
        case refused(starting: Bool)
    }

    /// Reads `body`, at most `limit` bytes within `deadline`, each part held in `beingRead` from when
    /// it arrives until the body is read: a connection that declared a large body and sends nothing
    /// holds nothing of the bound.
    private static func collect(_ body: RequestBody, upTo limit: Int, within deadline: Duration, holding beingRead: BodiesBeingRead) async throws -> BodyRead {
        try await withThrowingTaskGroup(of: BodyRead.self) { group in
            group.addTask {
                var collected = ByteBuffer()
                var held = 0
                defer { beingRead.release(held) }
                for try await var part in body {
                    guard collected.readableBytes + part.readableBytes <= limit else { return .tooLarge }
                    if case .refused(let starting) = beingRead.reserve(part.readableBytes) { return .refused(starting: starting) }
                    held += part.readableBytes
                    collected.writeBuffer(&part)
                }
                return .body(Array(collected.readableBytesView))
            }
            group.addTask {
                try await Task.sleep(for: deadline)
                return .tooSlow
            }
            defer { group.cancelAll() }
            return try await group.next() ?? .tooSlow
        }
    }

    /// A connection that sends nothing this long while its request is read, or between requests, is closed
    /// (one answered is kept however long its answer takes: that waits for the pipeline).
    static let idleTimeout = TimeAmount.seconds(30)

    private func receive(_ request: Request) async -> Response {
        let declared = request.headers[.contentLength].flatMap { Int($0) }
        if let declared, declared > settings.maxBodyBytes {
            Self.rejected(413).increment()
            return Response(status: .contentTooLarge)
        }
        let header = request.headers.first { $0.name.canonicalName == "x-hub-signature-256" }?.value
        // A declared length within the limit cannot be too large, so the signature is the first check
        // (SPEC 10's order): one that cannot be right is refused without reading the body.
        if declared != nil, !WebhookSignature.isWellFormed(header) {
            Self.rejected(401).increment()
            logger.warning("webhook POST refused", metadata: ["status": "401", "reason": "missing or malformed X-Hub-Signature-256"])
            return Response(status: .unauthorized)
        }
        let body: [UInt8]
        switch try? await Self.collect(request.body, upTo: settings.maxBodyBytes, within: Self.bodyDeadline(for: declared ?? settings.maxBodyBytes), holding: beingRead) {
        case .body(let read):
            body = read
        case .tooLarge:
            Self.rejected(413).increment()
            return Response(status: .contentTooLarge)
        case .tooSlow:
            Self.rejected(408).increment()
            return Response(status: .requestTimeout)
        case .refused(let starting):
            Self.rejected(503).increment()
            if starting {
                logger.warning("webhook POSTs answered 503: bodies being received and not yet checked hold max_pending_bytes (connections sending much, slowly?)",
                               metadata: ["max_pending_bytes": "\(settings.maxPendingBytes)"])
            }
            return Response(status: .serviceUnavailable)
        case nil:
            // The connection failed while the body came (or the server stops): nobody is left to answer, nothing to count.
            return Response(status: .badRequest)
        }
        if let refusal = WebhookAdmission.check(body, signatureHeader: header, settings: settings, signature: signature) {
            Self.rejected(refusal.status).increment()
            logger.warning("webhook POST refused", metadata: ["status": "\(refusal.status)", "reason": .string(refusal.reason)])
            return Response(status: HTTPResponse.Status(code: refusal.status))
        }
        let id = UUID().uuidString
        let status = await withCheckedContinuation { (answer: CheckedContinuation<HTTPResponse.Status, Never>) in
            let once = Mutex(Optional(answer))
            let receipt = Receipt(id: id, bytes: body.count) { status in once.withLock { $0.take() }?.resume(returning: status) }
            let delivery = Delivery(body: body, firstSeen: Date(), receipt: receipt)
            // Checked and handed out under the lock `stopIntake` takes: a POST taken is read by the
            // runtime (it comes before `.intakeStopped`), one after is answered 503 at once.
            let refusal = intake.withLock { state -> Intake.Refusal? in
                if let refusal = state.admit(receipt, maxPendingBytes: settings.maxPendingBytes) { return refusal }
                if case .enqueued = continuation.yield(.delivery(delivery)) { return nil }
                state.settle(id)
                return .closed
            }
            if case .full(let starting) = refusal {
                Self.rejected(503).increment()
                if starting {
                    logger.warning("webhook POSTs answered 503 until the pipeline catches up: those waiting for it hold max_pending_bytes",
                                   metadata: ["max_pending_bytes": "\(settings.maxPendingBytes)"])
                }
            }
            if refusal != nil { receipt.answer(.serviceUnavailable) }
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
