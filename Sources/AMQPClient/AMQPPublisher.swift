import CRabbitMQ
import Foundation
import Logging
import Synchronization

/// An exchange to declare, kept so it is declared again after a reconnect.
public struct AMQPExchangeDeclaration: Sendable, Equatable {
    public var name: String
    /// `topic`, `direct`, `fanout`, `headers`.
    public var type: String
    public var durable: Bool

    public init(name: String, type: String = "topic", durable: Bool = true) {
        self.name = name
        self.type = type
        self.durable = durable
    }
}

/// A binding of a queue to an exchange, kept so it is made again after a reconnect.
public struct AMQPBinding: Sendable, Equatable {
    public var queue: String
    public var exchange: String
    public var routingKey: String

    public init(queue: String, exchange: String, routingKey: String) {
        self.queue = queue
        self.exchange = exchange
        self.routingKey = routingKey
    }
}

/// A queue to declare, kept so it is declared again after a reconnect.
public struct AMQPQueueDeclaration: Sendable, Equatable {
    public var name: String
    public var durable: Bool
    public var arguments: AMQPTable

    public init(name: String, durable: Bool = true, arguments: AMQPTable = AMQPTable()) {
        self.name = name
        self.durable = durable
        self.arguments = arguments
    }
}

/// Publishes with publisher confirms, and runs queue RPCs, on a connection owned by a dedicated thread.
///
/// `publish` returns once the broker has confirmed the message (mandatory by default: an
/// unroutable message is an error, never silently dropped). Publishes made
/// together are sent together and confirmed together.
public final class AMQPPublisher: @unchecked Sendable {
    /// Something declared, made again on every new connection.
    private enum Declaration: Equatable {
        case queue(AMQPQueueDeclaration)
        case exchange(AMQPExchangeDeclaration)
        case binding(AMQPBinding)
    }

    private struct Publish {
        var exchange: String
        var routingKey: String
        var body: [UInt8]
        var properties: AMQPProperties
        var mandatory: Bool
        var confirmation: Confirmation
    }

    /// Who hears a publish's confirm: its caller, or the group of a publish in order.
    private enum Confirmation {
        case caller(CheckedContinuation<Result<Void, AMQPError>, Never>)
        case group(ConfirmGroup)

        func resume(returning result: Result<Void, AMQPError>) {
            switch self {
            case .caller(let continuation): continuation.resume(returning: result)
            case .group(let group): group.confirm(result)
            }
        }
    }

    /// The confirms of a publish in order: its caller hears once every message has its own, with the first failure.
    private final class ConfirmGroup: Sendable {
        private let state: Mutex<(remaining: Int, failure: AMQPError?)>
        private let continuation: CheckedContinuation<Result<Void, AMQPError>, Never>

        init(count: Int, continuation: CheckedContinuation<Result<Void, AMQPError>, Never>) {
            state = Mutex((count, nil))
            self.continuation = continuation
        }

        func confirm(_ result: Result<Void, AMQPError>) {
            let outcome = state.withLock { state -> Result<Void, AMQPError>? in
                if case .failure(let error) = result, state.failure == nil { state.failure = error }
                state.remaining -= 1
                guard state.remaining == 0 else { return nil }
                return state.failure.map { .failure($0) } ?? .success(())
            }
            if let outcome { continuation.resume(returning: outcome) }
        }
    }

    private enum Request {
        case publish(Publish)
        case declare(AMQPQueueDeclaration, passive: Bool, CheckedContinuation<Result<Int, AMQPError>, Never>)
        case remember(Declaration, CheckedContinuation<Result<Int, AMQPError>, Never>)
        case delete(String, ifEmpty: Bool, CheckedContinuation<Result<Int, AMQPError>, Never>)

        func fail(_ error: AMQPError) {
            switch self {
            case .publish(let publish): publish.confirmation.resume(returning: .failure(error))
            case .declare(_, _, let continuation), .remember(_, let continuation), .delete(_, _, let continuation): continuation.resume(returning: .failure(error))
            }
        }
    }

    private let urls: [AMQPURL]
    private let heartbeat: Int
    private let connectTimeout: Duration
    private let confirmTimeout: Duration
    private let answerTimeout: Duration
    private let logger: Logger
    /// What waits for the thread; `closed` once it has ended (a request then fails at once, not
    /// queued where nothing would answer it).
    private let requests = Mutex<(pending: [Request], closed: Bool)>(([], false))
    private let signal = DispatchSemaphore(value: 0)
    private let stopping = Atomic<Bool>(false)
    private let connectedState = Mutex<(Bool, AMQPError?)>((false, nil))
    // Used only on the publisher thread.
    private var session: AMQPSession?
    private var nextTag: UInt64 = 1
    private var declarations: [Declaration] = []
    private var retryAt = ContinuousClock.now
    private var hasConnected = false
    private var tlsFailuresInARow = 0
    private var backoff = Duration.milliseconds(100)

    /// `answerTimeout`: how long a broker's answer to a declaration or a deletion is waited for before
    /// the connection is given up (a broker that stops answering, heartbeats off, held every publish for
    /// good); as the consumer's, longer than two missed heartbeats and a quorum queue's leader election.
    public init(urls: [AMQPURL], heartbeat: Int = 30, connectTimeout: Duration = .seconds(5), confirmTimeout: Duration = .seconds(15),
                answerTimeout: Duration = .seconds(90), logger: Logger) {
        self.urls = urls
        self.heartbeat = heartbeat
        self.connectTimeout = connectTimeout
        self.confirmTimeout = confirmTimeout
        self.answerTimeout = answerTimeout
        self.logger = logger
    }

    /// Starts the connection thread.
    public func start() {
        let thread = Thread { [self] in runLoop() }
        thread.name = "amqp-publisher"
        thread.start()
    }

    /// Publishes and waits for the broker's confirm. `mandatory`: a message no queue takes is
    /// an error (`.unroutable`); without it, the broker drops such a message and confirms it.
    public func publish(exchange: String = "", routingKey: String, body: [UInt8], properties: AMQPProperties, mandatory: Bool = true) async throws(AMQPError) {
        try await withCheckedContinuation { continuation in
            submit([.publish(Publish(exchange: exchange, routingKey: routingKey, body: body, properties: properties, mandatory: mandatory, confirmation: .caller(continuation)))])
        }.get()
    }

    /// A message for `publish(inOrder:)`.
    public struct Message: Sendable {
        public var exchange: String
        public var routingKey: String
        public var body: [UInt8]
        public var properties: AMQPProperties
        public var mandatory: Bool

        public init(exchange: String = "", routingKey: String, body: [UInt8], properties: AMQPProperties, mandatory: Bool = true) {
            self.exchange = exchange
            self.routingKey = routingKey
            self.body = body
            self.properties = properties
            self.mandatory = mandatory
        }
    }

    /// Publishes `messages` one after the other — the broker takes them in this order, where
    /// separate `publish` calls made at once reach it in any order — and waits for every confirm;
    /// fails with the first failure (others may have been confirmed).
    public func publish(inOrder messages: [Message]) async throws(AMQPError) {
        if messages.count <= 1 {
            // (No group to count confirms for one message.)
            guard let message = messages.first else { return }
            return try await publish(exchange: message.exchange, routingKey: message.routingKey, body: message.body, properties: message.properties, mandatory: message.mandatory)
        }
        try await withCheckedContinuation { continuation in
            let group = ConfirmGroup(count: messages.count, continuation: continuation)
            submit(messages.map { .publish(Publish(exchange: $0.exchange, routingKey: $0.routingKey, body: $0.body, properties: $0.properties,
                                                   mandatory: $0.mandatory, confirmation: .group(group))) })
        }.get()
    }

    /// Declares an exchange (again after every reconnect).
    public func declare(_ exchange: AMQPExchangeDeclaration) async throws(AMQPError) {
        _ = try await withCheckedContinuation { continuation in submit([.remember(.exchange(exchange), continuation)]) }.get()
    }

    /// Binds a queue to an exchange (again after every reconnect).
    public func bind(_ binding: AMQPBinding) async throws(AMQPError) {
        _ = try await withCheckedContinuation { continuation in submit([.remember(.binding(binding), continuation)]) }.get()
    }

    /// Declares a durable queue (again after every reconnect). Returns its depth.
    @discardableResult
    public func declare(_ queue: AMQPQueueDeclaration) async throws(AMQPError) -> Int {
        try await withCheckedContinuation { continuation in
            submit([.declare(queue, passive: false, continuation)])
        }.get()
    }

    /// The number of ready messages in a queue (passive declare); fails if it does not exist.
    public func messageCount(_ queue: String) async throws(AMQPError) -> Int {
        try await withCheckedContinuation { continuation in
            submit([.declare(AMQPQueueDeclaration(name: queue), passive: true, continuation)])
        }.get()
    }

    /// Deletes a queue (`ifEmpty`: only if it holds no message, atomically on the broker; else a 406).
    public func delete(_ queue: String, ifEmpty: Bool = false) async throws(AMQPError) {
        _ = try await withCheckedContinuation { continuation in submit([.delete(queue, ifEmpty: ifEmpty, continuation)]) }.get()
    }

    /// Closes the connection; pending requests fail with `.closed`.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        signal.signal()
    }

    /// Requests waiting for the connection's thread: what its next batch holds (for tests).
    var waitingRequests: Int { requests.withLock { $0.pending.count } }

    /// Queues requests for the connection's thread, together and in their order.
    private func submit(_ batch: [Request]) {
        let queued = requests.withLock { requests in
            guard !requests.closed, !stopping.load(ordering: .acquiring) else { return false }
            requests.pending.append(contentsOf: batch)
            return true
        }
        guard queued else {
            batch.forEach { $0.fail(.closed) }
            return
        }
        signal.signal()
    }

    private func runLoop() {
        while !stopping.load(ordering: .acquiring) {
            _ = signal.wait(timeout: .now() + .milliseconds(session == nil ? 100 : 1000))
            let batch = requests.withLock { requests in
                defer { requests.pending.removeAll() }
                return requests.pending
            }
            guard ensureSession() else {
                let error = connectedState.withLock { $0.1 } ?? .connection("not connected")
                batch.forEach { $0.fail(error) }
                continue
            }
            do {
                if batch.isEmpty {
                    try serviceIdle()
                } else {
                    try process(batch)
                }
            } catch {
                drop(error)
            }
            // librabbitmq keeps each frame it read (a confirm, an answer) until released; all of them are read by now.
            if let session { amqp_maybe_release_buffers(session.state) }
        }
        let left = requests.withLock { requests in
            defer { (requests.pending, requests.closed) = ([], true) }
            return requests.pending
        }
        left.forEach { $0.fail(.closed) }
        session = nil
    }

    private func ensureSession() -> Bool {
        if session != nil { return true }
        guard ContinuousClock.now >= retryAt else { return false }
        do {
            let fresh = try AMQPSession(urls: urls, heartbeat: heartbeat, connectTimeout: connectTimeout)
            fresh.limitAnswers(to: answerTimeout)
            _ = amqp_confirm_select(fresh.state, AMQPSession.channel)
            try fresh.checkReply("confirm.select")
            for declaration in declarations { _ = try apply(declaration, on: fresh) }
            session = fresh
            nextTag = 1
            backoff = .milliseconds(100)
            hasConnected = true
            tlsFailuresInARow = 0
            connectedState.withLock { $0 = (true, nil) }
            logger.info("rabbitmq publisher connected", metadata: ["broker": .string(fresh.url.description)])
            return true
        } catch {
            if case .tls = error { tlsFailuresInARow += 1 } else { tlsFailuresInARow = 0 }
            connectedState.withLock { $0 = (false, reported(error)) }
            logger.warning("rabbitmq publisher cannot connect; retrying", metadata: ["error": "\(error)", "retry_in": "\(backoff)"])
            retryAt = .now + backoff
            backoff = min(backoff * 2, .seconds(10))
            return false
        }
    }

    /// What requests fail with while there is no connection, callers retrying anything but a
    /// refusal: a refused login as it is; a failed TLS check as it is only before the first
    /// connection and after `tlsFailuresBeforeRefusal` tries in a row (a handshake also breaks
    /// for passing reasons: a node restarting, a load balancer without backends); anything else
    /// as a connection problem.
    private func reported(_ error: AMQPError) -> AMQPError {
        switch error {
        case .authentication, .connection: return error
        case .tls where !hasConnected && tlsFailuresInARow >= Self.tlsFailuresBeforeRefusal: return error
        default: return .connection(error.description)
        }
    }

    /// Connection attempts (each through every URL) whose TLS check failed, before a starting
    /// caller is told the TLS setup is wrong.
    static let tlsFailuresBeforeRefusal = 3

    private func drop(_ error: AMQPError) {
        logger.warning("rabbitmq publisher connection lost", metadata: ["error": "\(error)"])
        session = nil
        connectedState.withLock { $0 = (false, reported(error)) }
    }

    private func process(_ batch: [Request]) throws(AMQPError) {
        var index = 0
        while index < batch.count {
            do {
                if case .publish = batch[index] {
                    var end = index
                    while end < batch.count, case .publish = batch[end] { end += 1 }
                    let publishes = Array(batch[index..<end])
                    // Answered there, each as the broker confirmed it or not, also when the connection fails.
                    index = end
                    try publishAndConfirm(publishes)
                } else {
                    try runRPC(batch[index])
                    index += 1
                }
            } catch {
                batch[index...].forEach { $0.fail(error) }
                throw error
            }
        }
    }

    private func runRPC(_ request: Request) throws(AMQPError) {
        guard let session else { throw .connection("not connected") }
        switch request {
        case .declare(let declaration, let passive, let continuation):
            // A failure here (a broker error closes the channel) is answered by `process`, which then reconnects.
            let count = try session.declareQueue(declaration.name, passive: passive, durable: declaration.durable, arguments: declaration.arguments)
            if !passive, !declarations.contains(.queue(declaration)) { declarations.append(.queue(declaration)) }
            continuation.resume(returning: .success(count))
        case .remember(let declaration, let continuation):
            let count = try apply(declaration, on: session)
            if !declarations.contains(declaration) { declarations.append(declaration) }
            continuation.resume(returning: .success(count))
        case .delete(let name, let ifEmpty, let continuation):
            try session.deleteQueue(name, ifEmpty: ifEmpty)
            declarations.removeAll { if case .queue(let queue) = $0 { queue.name == name } else if case .binding(let binding) = $0 { binding.queue == name } else { false } }
            continuation.resume(returning: .success(0))
        case .publish:
            return
        }
    }

    private func apply(_ declaration: Declaration, on session: AMQPSession) throws(AMQPError) -> Int {
        switch declaration {
        case .queue(let queue):
            return try session.declareQueue(queue.name, passive: false, durable: queue.durable, arguments: queue.arguments)
        case .exchange(let exchange):
            try session.declareExchange(exchange.name, type: exchange.type, durable: exchange.durable)
            return 0
        case .binding(let binding):
            try session.bind(queue: binding.queue, exchange: binding.exchange, routingKey: binding.routingKey)
            return 0
        }
    }

    /// The header that ties a returned (unroutable) message to its publish.
    static let publishIDHeader = "x-publish-id"

    /// Publishes and answers each publish with its confirm. When the connection or the channel
    /// fails meanwhile, those the broker confirmed before are answered confirmed (their callers must
    /// not publish them again: that would be a second copy), the others with the failure.
    private func publishAndConfirm(_ publishes: [Request]) throws(AMQPError) {
        let first = nextTag
        var outcome = [UInt64: Result<Void, AMQPError>]()
        do {
            try send(publishes, awaitingConfirmsInto: &outcome)
        } catch {
            answer(publishes, from: first, outcome, otherwise: error)
            throw error
        }
        answer(publishes, from: first, outcome, otherwise: .notConfirmed("no confirm"))
    }

    private func answer(_ publishes: [Request], from first: UInt64, _ outcome: [UInt64: Result<Void, AMQPError>], otherwise error: AMQPError) {
        for (offset, request) in publishes.enumerated() {
            guard case .publish(let publish) = request else { continue }
            publish.confirmation.resume(returning: outcome[first + UInt64(offset)] ?? .failure(error))
        }
    }

    private func send(_ publishes: [Request], awaitingConfirmsInto outcome: inout [UInt64: Result<Void, AMQPError>]) throws(AMQPError) {
        guard let session else { throw .connection("not connected") }
        let first = nextTag
        for request in publishes {
            guard case .publish(let publish) = request else { continue }
            var properties = publish.properties
            properties.headers[Self.publishIDHeader] = .string(String(nextTag))
            let arena = CArena()
            var rawProperties = arena.properties(properties)
            let status = amqp_basic_publish(session.state, AMQPSession.channel, arena.bytes(publish.exchange), arena.bytes(publish.routingKey),
                                            publish.mandatory ? 1 : 0, 0, &rawProperties, arena.bytes(publish.body))
            guard status == AMQP_STATUS_OK.rawValue else { throw session.failure(status: status, "publish") }
            nextTag += 1
        }
        // Returned publishes by tag: the broker sends basic.return before the confirm of the same message.
        var returned: [UInt64: String] = [:]
        // A return whose publish cannot be told: every publish of the batch not yet confirmed counts as returned.
        var unidentifiedReturn: String?
        let deadline = ContinuousClock.now + confirmTimeout
        while outcome.count < publishes.count {
            guard ContinuousClock.now < deadline else { throw .notConfirmed("no confirm within \(confirmTimeout)") }
            var frame = amqp_frame_t()
            var timeout = timeval(tv_sec: 1, tv_usec: 0)
            let status = amqp_simple_wait_frame_noblock(session.state, &frame, &timeout)
            if status == AMQP_STATUS_TIMEOUT.rawValue { continue }
            guard status == AMQP_STATUS_OK.rawValue else { throw session.failure(status: status) }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { continue }
            let method = frame.payload.method
            switch method.id {
            case AMQPSession.Method.basicAck, AMQPSession.Method.basicNack:
                guard let decoded = method.decoded else { continue }
                let isAck = method.id == AMQPSession.Method.basicAck
                let (tag, multiple) = isAck
                    ? { let ack = decoded.assumingMemoryBound(to: amqp_basic_ack_t.self).pointee; return (ack.delivery_tag, ack.multiple != 0) }()
                    : { let nack = decoded.assumingMemoryBound(to: amqp_basic_nack_t.self).pointee; return (nack.delivery_tag, nack.multiple != 0) }()
                let range = multiple ? min(first, tag)...tag : tag...tag
                for confirmed in range where confirmed >= first && confirmed < nextTag && outcome[confirmed] == nil {
                    if let reason = returned[confirmed] ?? unidentifiedReturn {
                        outcome[confirmed] = .failure(.unroutable(reason))
                    } else {
                        outcome[confirmed] = isAck ? .success(()) : .failure(.notConfirmed("the broker nacked the message"))
                    }
                }
            case AMQPSession.Method.basicReturn:
                let reason = method.decoded.map { decoded in
                    let returnMethod = decoded.assumingMemoryBound(to: amqp_basic_return_t.self).pointee
                    return "\(returnMethod.reply_code) \(AMQPDecode.string(returnMethod.reply_text)) (routing key `\(AMQPDecode.string(returnMethod.routing_key))`)"
                } ?? "no queue bound for the routing key"
                var message = amqp_message_t()
                let read = amqp_read_message(session.state, frame.channel, &message, 0)
                // A read that failed has freed what it read (and left the body's pointer behind: destroying it again is a double free).
                guard read.reply_type == AMQP_RESPONSE_NORMAL else { throw session.failure(read, "read a returned message") }
                if let id = AMQPDecode.properties(message.properties).headers[Self.publishIDHeader]?.stringValue.flatMap(UInt64.init) {
                    returned[id] = reason
                } else {
                    unidentifiedReturn = reason
                }
                amqp_destroy_message(&message)
            case AMQPSession.Method.connectionClose, AMQPSession.Method.channelClose:
                // Answered with close-ok, so dropping the session sends the broker nothing it would ignore.
                throw session.acceptClose(method) ?? .broker(code: 0, text: "closed")
            default:
                continue
            }
        }
    }

    private func serviceIdle() throws(AMQPError) {
        guard let session else { return }
        var frame = amqp_frame_t()
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(session.state, &frame, &zero)
        guard status == AMQP_STATUS_OK.rawValue || status == AMQP_STATUS_TIMEOUT.rawValue else {
            throw session.failure(status: status)
        }
        if status == AMQP_STATUS_OK.rawValue, frame.frame_type == UInt8(AMQP_FRAME_METHOD), let close = session.acceptClose(frame.payload.method) {
            throw close
        }
    }
}
