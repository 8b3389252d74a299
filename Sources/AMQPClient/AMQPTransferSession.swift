import CRabbitMQ
import Foundation

/// A blocking connection for operator tools: reads a queue without consuming it (`basic.get`,
/// unacknowledged until the connection closes) and moves messages in transactions, so a copy's
/// publish and its original's ack commit together or not at all — a tool killed at any point
/// leaves each message in exactly one of the two queues. (A commit the broker could not complete —
/// a queue refused a publish — still applied its acks: `putBack` restores what it removed, unless
/// that is refused too.)
///
/// Not thread-safe, and every call blocks: make it and use it inside `AMQPTransferSession.run`,
/// which gives it a thread of its own.
///
/// ```swift
/// try await AMQPTransferSession.run(urls: urls) { session in
///     try session.beginTransactions()
///     while let message = try session.get("orders.dead") {
///         try session.publish(routingKey: "orders", body: message.body, properties: message.properties)
///         try session.ack(message)
///         try session.commit()
///     }
/// }
/// ```
public final class AMQPTransferSession {
    private let session: AMQPSession
    private var transactional = false

    private init(urls: [AMQPURL], connectTimeout: Duration) throws(AMQPError) {
        session = try AMQPSession(urls: urls, heartbeat: 0, connectTimeout: connectTimeout)
        // Without heartbeats, a broker that stops reading (a memory alarm blocks publishing connections)
        // held a get or a commit for good, and the tool with it.
        session.limitAnswers(to: Self.answerTimeout)
    }

    /// How long an RPC (get, commit, declare) waits for the broker's answer before the connection is given up.
    public static let answerTimeout = Duration.seconds(30)

    /// Runs `work` with a session on a thread of its own (its calls block); the connection closes
    /// afterwards, returning every message read and not acknowledged to its queue.
    public static func run<T: Sendable>(urls: [AMQPURL], connectTimeout: Duration = .seconds(5),
                                        _ work: @escaping @Sendable (AMQPTransferSession) throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            let thread = Thread {
                do {
                    let session = try AMQPTransferSession(urls: urls, connectTimeout: connectTimeout)
                    continuation.resume(returning: try work(session))
                } catch {
                    continuation.resume(throwing: error)
                }
            }
            thread.name = "amqp-transfer"
            thread.start()
        }
    }

    /// The broker this session is connected to.
    public var broker: String { session.url.description }

    /// The number of messages ready in `queue`; throws `.broker(404, …)` when it does not exist.
    public func messageCount(_ queue: String) throws(AMQPError) -> Int {
        try session.declareQueue(queue, passive: true, durable: true, arguments: AMQPTable())
    }

    /// Takes the lock named `name` for as long as this session lasts — an exclusive queue of that
    /// name, which the broker deletes when the connection closes. Throws `.broker(405, …)` while
    /// another connection holds it.
    /// (A refusal closes the channel: it is opened again, so the session goes on.)
    public func lock(_ name: String) throws(AMQPError) {
        do {
            _ = try session.declareQueue(name, passive: false, durable: false, exclusive: true, arguments: AMQPTable())
        } catch {
            if case .broker = error { try session.reopenChannel() }
            throw error
        }
    }

    /// The next message of `queue`, unacknowledged (it returns to the queue when the session
    /// closes unless acknowledged); nil when the queue is empty.
    public func get(_ queue: String) throws(AMQPError) -> AMQPDelivery? {
        let arena = CArena()
        let reply = amqp_basic_get(session.state, AMQPSession.channel, arena.bytes(queue), 0)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { throw session.failure(reply, "get from `\(queue)`") }
        guard reply.reply.id == Self.getOK, let decoded = reply.reply.decoded else { return nil }
        let ok = decoded.assumingMemoryBound(to: amqp_basic_get_ok_t.self).pointee
        // (Its strings point into the frame's memory, released below: copied first.)
        let (exchange, routingKey) = (AMQPDecode.string(ok.exchange), AMQPDecode.string(ok.routing_key))
        var message = amqp_message_t()
        let read = amqp_read_message(session.state, AMQPSession.channel, &message, 0)
        guard read.reply_type == AMQP_RESPONSE_NORMAL else { throw session.failure(read, "read a message of `\(queue)`") }
        defer { amqp_destroy_message(&message) }
        amqp_maybe_release_buffers(session.state)
        return AMQPDelivery(deliveryTag: ok.delivery_tag, connectionGeneration: 0, redelivered: ok.redelivered != 0,
                            exchange: exchange, routingKey: routingKey, body: AMQPDecode.bytes(message.body), properties: AMQPDecode.properties(message.properties))
    }

    /// Puts the channel in transaction mode: publishes and acks take effect at `commit`.
    public func beginTransactions() throws(AMQPError) {
        guard amqp_tx_select(session.state, AMQPSession.channel) != nil else { throw session.failure(amqp_get_rpc_reply(session.state), "tx.select") }
        transactional = true
    }

    /// Publishes to the default exchange (`mandatory`: a message no queue takes comes back, and `commit` reports it).
    public func publish(routingKey: String, body: [UInt8], properties: AMQPProperties) throws(AMQPError) {
        let arena = CArena()
        var raw = arena.properties(properties)
        let status = amqp_basic_publish(session.state, AMQPSession.channel, arena.bytes(""), arena.bytes(routingKey), 1, 0, &raw, arena.bytes(body))
        guard status == AMQP_STATUS_OK.rawValue else { throw session.failure(status: status, "publish") }
    }

    /// Acknowledges a message read with `get` (removes it from its queue, at `commit` in transaction mode).
    public func ack(_ message: AMQPDelivery) throws(AMQPError) {
        let status = amqp_basic_ack(session.state, AMQPSession.channel, message.deliveryTag, 0)
        guard status == AMQP_STATUS_OK.rawValue else { throw session.failure(status: status, "ack") }
    }

    /// Commits the publishes and acks since the last commit. Returns the messages the broker
    /// returned as unroutable (their acks are committed too: the caller puts them back).
    public func commit() throws(AMQPError) -> [AMQPDelivery] {
        precondition(transactional, "commit without beginTransactions")
        guard amqp_tx_commit(session.state, AMQPSession.channel) != nil else { throw session.failure(amqp_get_rpc_reply(session.state), "tx.commit") }
        // The broker sends each basic.return before commit-ok: librabbitmq queued them while waiting for it.
        var returned: [AMQPDelivery] = []
        while amqp_frames_enqueued(session.state) != 0 {
            var frame = amqp_frame_t()
            var zero = timeval(tv_sec: 0, tv_usec: 0)
            guard amqp_simple_wait_frame_noblock(session.state, &frame, &zero) == AMQP_STATUS_OK.rawValue else { break }
            guard frame.frame_type == UInt8(AMQP_FRAME_METHOD), frame.payload.method.id == AMQPSession.Method.basicReturn else { continue }
            var message = amqp_message_t()
            let read = amqp_read_message(session.state, frame.channel, &message, 0)
            // (A read that failed has freed what it read: destroying it again is a double free.) A return
            // not read is a copy that went nowhere unnoticed: the commit is reported failed instead.
            guard read.reply_type == AMQP_RESPONSE_NORMAL else { throw session.failure(read, "read a returned message") }
            returned.append(AMQPDelivery(deliveryTag: 0, connectionGeneration: 0, redelivered: false, exchange: "", routingKey: "",
                                         body: AMQPDecode.bytes(message.body), properties: AMQPDecode.properties(message.properties)))
            amqp_destroy_message(&message)
        }
        return returned
    }

    /// Publishes `message` to `queue` in a transaction of its own, on the channel opened again if
    /// the broker closed it: for a message a failed commit removed — RabbitMQ applies a
    /// transaction's acks even when a queue refuses one of its publishes (`partial tx completion`).
    public func putBack(_ message: AMQPDelivery, to queue: String) throws(AMQPError) {
        try session.reopenChannel()
        guard amqp_tx_select(session.state, AMQPSession.channel) != nil else { throw session.failure(amqp_get_rpc_reply(session.state), "tx.select") }
        transactional = true
        try publish(routingKey: queue, body: message.body, properties: message.properties)
        guard try commit().isEmpty else { throw .unroutable("no queue `\(queue)`") }
    }

    private static let getOK: amqp_method_number_t = 0x003C_0047
}
