import CRabbitMQ
import Foundation
import Logging
import Synchronization

/// What a consumer reports besides deliveries.
public enum AMQPConsumerEvent: Sendable {
    case delivery(AMQPDelivery)
    case connected(String)
    case disconnected(String)
    /// After `stopIntake`: no delivery follows.
    case intakeStopped
}

/// Consumes one queue on a connection owned by a dedicated thread.
///
/// The thread waits in `poll` on the socket and an eventfd: deliveries go to the event
/// handler at once (on the thread: it must not block), and commands queued by Swift tasks (acks,
/// nacks, pause, resume, stopIntake) wake it; they are carried out at most once a window of its
/// `AckBatching` (none by default), all those queued meanwhile together.
/// On a broken connection it reconnects with backoff (trying each URL in turn);
/// acks for deliveries of an older connection are dropped, since the broker
/// redelivers those messages, while a pause, resume or stopIntake not carried out
/// on the lost connection is carried to the next (`ConsumerCommand`).
/// Acks are coalesced (`AckCoalescer`): those behind a delivery in flight may wait for it.
public final class AMQPConsumer: @unchecked Sendable {
    private typealias Command = ConsumerCommand

    /// The consumer's state, for health checks.
    public struct Status: Sendable, Equatable {
        public var connected = false
        public var consuming = false
        public var lastError: String?
    }

    private let emit: @Sendable (AMQPConsumerEvent) -> Void
    private let finished: @Sendable () -> Void
    private let urls: [AMQPURL]
    private let queue: String
    private let prefetch: Int
    private let heartbeat: Int
    private let connectTimeout: Duration
    /// How commands queued by tasks wait for more, and acks for the deliveries before them (`AckBatching.forConsumer`).
    private let ackBatching: AckBatching
    private let logger: Logger
    private let wakeFD: Int32
    private let commands = Mutex<[Command]>([])
    /// Whether the eventfd was written since the thread last took the commands (one wake-up suffices).
    private let wakePending = Atomic<Bool>(false)
    private let stopping = Atomic<Bool>(false)
    private let state = Mutex(Status())
    // Used only on the consumer thread.
    private var generation = 0 {
        didSet { liveGeneration.store(generation, ordering: .releasing) }
    }
    /// `generation`, readable from any thread.
    private let liveGeneration = Atomic<Int>(0)
    private var paused = false
    private var intakeStopped = false
    private var consumerTag = ""
    private var acks = AckCoalescer()

    /// How long a basic.qos or basic.consume waits for the broker's answer before the connection is
    /// given up: without heartbeats librabbitmq waits for good, and meanwhile the thread carries out no
    /// command — a stopIntake included, which SIGTERM's drain waits for. Longer than the two missed
    /// heartbeats (60 s by default) that end a silent connection anyway, and than a quorum queue's
    /// leader election: a broker that is slow but alive keeps its connection and its deliveries' acks.
    private let answerTimeout: Duration

    /// `events` receives deliveries and connection changes on the consumer's thread; `finished` is called once after `stop`.
    public init(urls: [AMQPURL], queue: String, prefetch: Int, heartbeat: Int = 30, connectTimeout: Duration = .seconds(5), answerTimeout: Duration = .seconds(90),
                ackBatching: AckBatching = .none, logger: Logger, events: @escaping @Sendable (AMQPConsumerEvent) -> Void, finished: @escaping @Sendable () -> Void = {}) {
        self.answerTimeout = answerTimeout
        emit = events
        self.finished = finished
        self.urls = urls
        self.queue = queue
        self.prefetch = prefetch
        self.heartbeat = heartbeat
        self.connectTimeout = connectTimeout
        self.ackBatching = ackBatching
        self.logger = logger
        wakeFD = outbound_wakeup_fd()
    }

    /// A consumer whose events come as a stream (for callers that read them in one task).
    public static func streaming(urls: [AMQPURL], queue: String, prefetch: Int, heartbeat: Int = 30, ackBatching: AckBatching = .none,
                                 logger: Logger) -> (AMQPConsumer, AsyncStream<AMQPConsumerEvent>) {
        let (stream, continuation) = AsyncStream.makeStream(of: AMQPConsumerEvent.self)
        let consumer = AMQPConsumer(urls: urls, queue: queue, prefetch: prefetch, heartbeat: heartbeat, ackBatching: ackBatching, logger: logger,
                                    events: { continuation.yield($0) }, finished: { continuation.finish() })
        return (consumer, stream)
    }

    deinit {
        close(wakeFD)
    }

    /// Starts the connection thread.
    public func start() {
        let thread = Thread { [self] in runLoop() }
        thread.name = "amqp-consumer"
        thread.start()
    }

    public var status: Status { state.withLock { $0 } }

    /// Acknowledges a delivery.
    public func ack(_ delivery: AMQPDelivery) {
        submit(.ack(delivery.deliveryTag, generation: delivery.connectionGeneration))
    }

    /// Rejects a delivery; with `requeue` the broker delivers it again.
    public func nack(_ delivery: AMQPDelivery, requeue: Bool) {
        submit(.nack(delivery.deliveryTag, generation: delivery.connectionGeneration, requeue: requeue))
    }

    /// Whether `delivery` came on the connection in use now (else its ack is void: the broker hands it out again).
    public func holds(_ delivery: AMQPDelivery) -> Bool {
        delivery.connectionGeneration == liveGeneration.load(ordering: .acquiring)
    }

    /// Stops receiving deliveries (basic.cancel); unacknowledged ones can still be acknowledged.
    public func pause() { submit(.pause) }

    /// Receives deliveries again after `pause`.
    public func resume() { submit(.resume) }

    /// Stops receiving for good (basic.cancel) and reports `.intakeStopped`; deliveries that
    /// still arrive go straight back to the queue. Acks keep working until `stop`.
    public func stopIntake() { submit(.stopIntake) }

    /// Sends the acks already queued, closes the connection (unacknowledged deliveries
    /// return to the queue) and ends `events`.
    public func stop() {
        stopping.store(true, ordering: .releasing)
        wake()
    }

    private func submit(_ command: Command) {
        commands.withLock { $0.append(command) }
        if !wakePending.exchange(true, ordering: .acquiringAndReleasing) { wake() }
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(wakeFD, &one, 8)
    }

    private var isStopping: Bool { stopping.load(ordering: .acquiring) }

    private func runLoop() {
        var backoff = Duration.milliseconds(100)
        while !isStopping {
            // Without a connection there is nothing to stop: intake ends here, acks of old deliveries are void anyway.
            if takeStopIntake() { reportIntakeStopped() }
            if intakeStopped {
                sleepInterruptibly(.seconds(1))
                continue
            }
            do {
                let session = try AMQPSession(urls: urls, heartbeat: heartbeat, connectTimeout: connectTimeout)
                session.limitAnswers(to: answerTimeout)
                generation += 1
                acks = AckCoalescer(ackBatching)
                // A pause, resume or stopIntake still queued (one a failed batch gave back, say) decides whether this connection consumes.
                let wasPaused = paused
                paused = commands.withLock { pending in
                    let start = Command.carriedOver(pending, paused: wasPaused)
                    pending = start.pending
                    return start.paused
                } || intakeStopped
                try startConsuming(session, qos: true)
                state.withLock { $0 = Status(connected: true, consuming: !paused, lastError: nil) }
                emit(.connected(session.url.description))
                backoff = .milliseconds(100)
                try serve(session)
            } catch {
                // A connection that breaks while stopping (flushing the last acks) needs no reconnect.
                if isStopping { break }
                // Its deliveries are the broker's again from now, not once a new connection is made: `holds` says so at once.
                generation += 1
                state.withLock { $0 = Status(connected: false, consuming: false, lastError: error.description) }
                if !intakeStopped { emit(.disconnected(error.description)) }
                logger.warning("rabbitmq consumer disconnected; reconnecting", metadata: ["error": "\(error)", "retry_in": "\(backoff)"])
                sleepInterruptibly(backoff)
                backoff = min(backoff * 2, .seconds(10))
            }
        }
        state.withLock { $0 = Status(connected: false, consuming: false, lastError: "stopped") }
        if !intakeStopped { reportIntakeStopped() }
        finished()
    }

    /// Whether a `stopIntake` is queued (taken out of the queue, so it is handled once).
    private func takeStopIntake() -> Bool {
        commands.withLock { pending in
            guard let index = pending.firstIndex(where: { if case .stopIntake = $0 { true } else { false } }) else { return false }
            pending.remove(at: index)
            return true
        }
    }

    private func reportIntakeStopped() {
        guard !intakeStopped else { return }
        intakeStopped = true
        paused = true
        state.withLock { $0.consuming = false }
        emit(.intakeStopped)
    }

    private func startConsuming(_ session: AMQPSession, qos: Bool) throws(AMQPError) {
        if qos {
            _ = amqp_basic_qos(session.state, AMQPSession.channel, 0, UInt16(clamping: prefetch), 0)
            try session.checkReply("basic.qos")
        }
        guard !paused else { return }
        let arena = CArena()
        guard let ok = amqp_basic_consume(session.state, AMQPSession.channel, arena.bytes(queue), amqp_bytes_t(len: 0, bytes: nil), 0, 0, 0, amqp_table_t(num_entries: 0, entries: nil)) else {
            throw session.failure(amqp_get_rpc_reply(session.state), "consume `\(queue)`")
        }
        consumerTag = AMQPDecode.string(ok.pointee.consumer_tag)
    }

    private func serve(_ session: AMQPSession) throws(AMQPError) {
        let socket = amqp_get_sockfd(session.state)
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        /// When the commands queued since the last batch are carried out; nil: none known to be queued.
        var commandsDue: ContinuousClock.Instant? = .now
        /// At most one batch a window: commands noticed a window or more after the last one go at once
        /// (at such a rate nothing would come to join them), sooner ones wait for the rest of the window.
        var lastBatch = ContinuousClock.now - ackBatching.window
        while !isStopping {
            // Checked here, not only when the eventfd is read: while deliveries stream in, the thread does not poll.
            if commandsDue == nil, wakePending.load(ordering: .acquiring) { commandsDue = max(.now, lastBatch + ackBatching.window) }
            // Acks held behind a delivery in flight go out on their own when they waited long enough.
            var due = Self.earlier(commandsDue, acks.nextRelease)
            if let batchDue = due, ContinuousClock.now >= batchDue {
                commandsDue = nil
                lastBatch = .now
                try execute(takeCommands(), session)
                due = acks.nextRelease
            }
            if amqp_data_in_buffer(session.state) == 0, amqp_frames_enqueued(session.state) == 0 {
                var fds = [pollfd(fd: socket, events: Int16(POLLIN), revents: 0), pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
                _ = poll(&fds, 2, Self.milliseconds(due.map { $0 - .now } ?? .seconds(1)))
                if fds[1].revents != 0 {
                    var value: UInt64 = 0
                    _ = read(wakeFD, &value, 8)
                }
                // (After the idle timeout librabbitmq is still asked below: it keeps the heartbeats.)
                if fds[0].revents == 0, fds[1].revents != 0 || due != nil { continue }
            }
            for _ in 0..<256 {
                var envelope = amqp_envelope_t()
                amqp_maybe_release_buffers(session.state)
                let reply = amqp_consume_message(session.state, &envelope, &zero, 0)
                if reply.reply_type == AMQP_RESPONSE_NORMAL {
                    if intakeStopped {
                        // Arrived before the broker saw the cancel: straight back to the queue.
                        acks.delivered(envelope.delivery_tag)
                        acks.settledIndividually(envelope.delivery_tag)
                        _ = amqp_basic_nack(session.state, AMQPSession.channel, envelope.delivery_tag, 0, 1)
                    } else {
                        emit(.delivery(delivery(from: envelope)))
                    }
                    amqp_destroy_envelope(&envelope)
                    continue
                }
                if reply.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION {
                    if reply.library_error == AMQP_STATUS_TIMEOUT.rawValue { break }
                    if reply.library_error == AMQP_STATUS_UNEXPECTED_STATE.rawValue {
                        try handleUnexpectedFrame(session)
                        continue
                    }
                }
                throw session.failure(reply, "consume")
            }
        }
        // Acks queued before the stop, and those held, still reach the broker, so those messages are not delivered again.
        try execute(takeCommands(), session)
        try send(acks.releaseAll(), session)
    }

    /// The earlier of two instants, either of which may be unknown.
    private static func earlier(_ one: ContinuousClock.Instant?, _ other: ContinuousClock.Instant?) -> ContinuousClock.Instant? {
        guard let one, let other else { return one ?? other }
        return min(one, other)
    }

    /// `duration` as a `poll` timeout: whole milliseconds, rounded up (none below zero).
    private static func milliseconds(_ duration: Duration) -> Int32 {
        let (seconds, attoseconds) = max(duration, .zero).components
        return Int32(clamping: seconds * 1000 + (attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }

    private func takeCommands() -> [Command] {
        wakePending.store(false, ordering: .releasing)
        return commands.withLock { pending in
            defer { pending.removeAll() }
            return pending
        }
    }

    private func handleUnexpectedFrame(_ session: AMQPSession) throws(AMQPError) {
        var frame = amqp_frame_t()
        var zero = timeval(tv_sec: 0, tv_usec: 0)
        let status = amqp_simple_wait_frame_noblock(session.state, &frame, &zero)
        guard status == AMQP_STATUS_OK.rawValue else {
            if status == AMQP_STATUS_TIMEOUT.rawValue { return }
            throw session.failure(status: status)
        }
        guard frame.frame_type == UInt8(AMQP_FRAME_METHOD) else { return }
        let method = frame.payload.method
        // A close is answered with close-ok here, so dropping the session sends the broker nothing it would ignore.
        if let close = session.acceptClose(method) { throw close }
        switch method.id {
        case AMQPSession.Method.basicCancel:
            throw .connection("the broker cancelled the consumer of `\(queue)` (queue deleted?)")
        default:
            return
        }
    }

    /// Carries out `batch` on `session`: its acks go out as few frames as is safe (`AckCoalescer`), with
    /// those held long enough, and before a pause, resume or stopIntake all held. When a command fails, it and the ones after it go back to
    /// the front of the queue for the next connection (`Command.carriedOver`), and the error ends this one.
    private func execute(_ batch: [Command], _ session: AMQPSession) throws(AMQPError) {
        var acked: [UInt64] = []
        let failure = Command.run(batch, perform: { (command: Command) throws(AMQPError) in
            try perform(command, session, acked: &acked)
        }, flush: { (beforeAnswer: Bool) throws(AMQPError) in
            try send(acks.acknowledge(acked, at: .now) + (beforeAnswer ? acks.releaseAll() : []), session)
            acked.removeAll()
        })
        guard let failure else { return }
        commands.withLock { $0.insert(contentsOf: failure.notCarriedOut, at: 0) }
        throw failure.error
    }

    /// Carries out one command; acks of this connection are collected in `acked` for the batch's flush.
    private func perform(_ command: Command, _ session: AMQPSession, acked: inout [UInt64]) throws(AMQPError) {
        switch command {
        case .ack(let tag, let generation):
            guard generation == self.generation else { return }
            acked.append(tag)
        case .nack(let tag, let generation, let requeue):
            guard generation == self.generation else { return }
            let status = amqp_basic_nack(session.state, AMQPSession.channel, tag, 0, requeue ? 1 : 0)
            acks.settledIndividually(tag)
            if status != AMQP_STATUS_OK.rawValue { throw session.failure(status: status, "nack") }
        case .pause:
            guard !paused else { return }
            paused = true
            try cancelConsuming(session)
            state.withLock { $0.consuming = false }
        case .resume:
            guard paused, !intakeStopped else { return }
            paused = false
            try startConsuming(session, qos: false)
            state.withLock { $0.consuming = true }
        case .stopIntake:
            if !paused { try cancelConsuming(session) }
            reportIntakeStopped()
        }
    }

    /// Cancels consuming without waiting for the broker's cancel-ok (nowait): deliveries it sent
    /// before it saw the cancel still arrive and are handled as such, and a broker that is slow or
    /// silent does not hold the thread — a stopIntake is reported at once, and the connection stays
    /// for the acks of the deliveries still in flight.
    private func cancelConsuming(_ session: AMQPSession) throws(AMQPError) {
        let arena = CArena()
        var cancel = amqp_basic_cancel_t(consumer_tag: arena.bytes(consumerTag), nowait: 1)
        let status = amqp_send_method(session.state, AMQPSession.channel, AMQPSession.Method.basicCancel, &cancel)
        if status != AMQP_STATUS_OK.rawValue { throw session.failure(status: status, "basic.cancel") }
    }

    private func send(_ frames: [AckCoalescer.Frame], _ session: AMQPSession) throws(AMQPError) {
        for frame in frames {
            let status = amqp_basic_ack(session.state, AMQPSession.channel, frame.tag, frame.multiple ? 1 : 0)
            if status != AMQP_STATUS_OK.rawValue { throw session.failure(status: status, "ack") }
        }
    }

    private func delivery(from envelope: amqp_envelope_t) -> AMQPDelivery {
        acks.delivered(envelope.delivery_tag)
        return AMQPDelivery(
            deliveryTag: envelope.delivery_tag,
            connectionGeneration: generation,
            redelivered: envelope.redelivered != 0,
            exchange: AMQPDecode.string(envelope.exchange),
            routingKey: AMQPDecode.string(envelope.routing_key),
            body: AMQPDecode.bytes(envelope.message.body),
            properties: AMQPDecode.properties(envelope.message.properties))
    }

    private func sleepInterruptibly(_ duration: Duration) {
        var fds = [pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)]
        _ = poll(&fds, 1, Int32(duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000))
        var value: UInt64 = 0
        _ = read(wakeFD, &value, 8)
    }
}
