import CRabbitMQ
import Foundation

/// One librabbitmq connection with channel 1 open. Not thread-safe: the thread
/// that made it is the only one that uses it.
///
/// Whoever sees the broker close the connection or the channel hands the method to
/// `acceptClose` (or a failed RPC to `failure`): the close is answered with its close-ok and
/// remembered, so that releasing the session sends no RPC the broker would never answer.
final class AMQPSession {
    let state: amqp_connection_state_t
    let url: AMQPURL
    static let channel: amqp_channel_t = 1

    /// How long each RPC of a polite close may wait (librabbitmq's default is forever).
    static let closeTimeout = Duration.seconds(2)

    /// The broker closed the connection (and was answered): nothing more may be sent.
    private var closedByBroker = false
    /// The broker closed channel 1 (and was answered): closing skips channel.close.
    private var channelClosedByBroker = false
    /// The socket failed: closing sends nothing.
    private var socketFailed = false

    /// Method ids (the header's macros are casts Swift does not import).
    enum Method {
        static let connectionClose: amqp_method_number_t = 0x000A_0032
        static let connectionCloseOK: amqp_method_number_t = 0x000A_0033
        static let channelClose: amqp_method_number_t = 0x0014_0028
        static let channelCloseOK: amqp_method_number_t = 0x0014_0029
        static let basicReturn: amqp_method_number_t = 0x003C_0032
        static let basicAck: amqp_method_number_t = 0x003C_0050
        static let basicNack: amqp_method_number_t = 0x003C_0078
        static let basicCancel: amqp_method_number_t = 0x003C_001E
    }

    /// Connects to the first URL that answers, logs in and opens channel 1. A refused login
    /// stops at once; a failed TLS check moves on to the next URL like any connection failure,
    /// and is what is thrown when no URL answered better.
    init(urls: [AMQPURL], heartbeat: Int, connectTimeout: Duration) throws(AMQPError) {
        var lastError = AMQPError.configuration("no broker URL given")
        var tlsError: AMQPError?
        for url in urls {
            do {
                (state, self.url) = try Self.open(url, heartbeat: heartbeat, connectTimeout: connectTimeout)
                return
            } catch {
                lastError = error
                if case .authentication = error { throw error }
                if case .tls = error { tlsError = error }
            }
        }
        throw tlsError ?? lastError
    }

    /// Bounds every RPC from now on (librabbitmq waits forever by default, or, with heartbeats, until
    /// two are missed); one that times out closes the socket, and the caller's error ends the session.
    func limitAnswers(to timeout: Duration) {
        var limit = Self.timeval(timeout)
        _ = amqp_set_rpc_timeout(state, &limit)
    }

    deinit {
        closePolitely()
        amqp_destroy_connection(state)
    }

    private static func open(_ url: AMQPURL, heartbeat: Int, connectTimeout: Duration) throws(AMQPError) -> (amqp_connection_state_t, AMQPURL) {
        guard let state = amqp_new_connection() else { throw .connection("cannot allocate a connection") }
        let socket: OpaquePointer?
        do {
            socket = url.tls ? try tlsSocket(state, url.tlsOptions) : amqp_tcp_socket_new(state)
        } catch {
            amqp_destroy_connection(state)
            throw error
        }
        guard let socket else {
            amqp_destroy_connection(state)
            throw .connection("cannot create a socket")
        }
        var timeout = Self.timeval(connectTimeout)
        let status = amqp_socket_open_noblock(socket, url.host, Int32(url.port), &timeout)
        guard status == AMQP_STATUS_OK.rawValue else {
            amqp_destroy_connection(state)
            let reason = String(cString: amqp_error_string2(status))
            // librabbitmq reports some failed handshakes as a plain socket error: if the port takes
            // TCP, it was TLS that failed (a wrong CA, or no TLS on that port), not the network.
            if url.tls, Self.tlsFailures.contains(status) || Self.acceptsTCP(url, connectTimeout: connectTimeout) {
                throw .tls("TLS with \(url.host):\(url.port) failed: \(reason) (is `ca_file` the CA that signed the broker's certificate, and the host name in it?)")
            }
            throw .connection("cannot connect to \(url.host):\(url.port): \(reason)")
        }
        let login = outbound_amqp_login_plain(state, url.virtualHost, 0, 131_072, Int32(heartbeat), url.user, url.password)
        if login.reply_type != AMQP_RESPONSE_NORMAL {
            let detail = describe(login)
            let close = login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION ? serverClose(login.reply) : nil
            amqp_destroy_connection(state)
            // A connection limit of the user or the vhost reached (530 "… connection limit (N) is reached") is no
            // refusal of who logs in: the next URL, and this one again later.
            if let (code, text) = close, code == 530, text.contains("connection limit") {
                throw .connection("login to \(url.host):\(url.port): \(detail)")
            }
            // (librabbitmq asks for authentication_failure_close: a refused login is the broker's close, never a bare
            // closed socket — that is a node going away, or a balancer without a backend: the next URL is tried.)
            if login.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION {
                throw .authentication("user `\(url.user)` at \(url.host):\(url.port) vhost `\(url.virtualHost)` (wrong user, password or vhost?): \(detail)")
            }
            throw .connection("login to \(url.host):\(url.port): \(detail)")
        }
        _ = amqp_channel_open(state, channel)
        let reply = amqp_get_rpc_reply(state)
        if reply.reply_type != AMQP_RESPONSE_NORMAL {
            amqp_destroy_connection(state)
            throw .connection("cannot open a channel: \(describe(reply))")
        }
        return (state, url)
    }

    /// librabbitmq's statuses for a handshake or certificate check that failed.
    private static let tlsFailures: Set<Int32> = [
        AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED.rawValue,
        AMQP_STATUS_SSL_PEER_VERIFY_FAILED.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue,
    ]

    /// Whether `url`'s port accepts a plain TCP connection (closed again at once).
    private static func acceptsTCP(_ url: AMQPURL, connectTimeout: Duration) -> Bool {
        guard let probe = amqp_new_connection() else { return false }
        defer { amqp_destroy_connection(probe) }
        guard let socket = amqp_tcp_socket_new(probe) else { return false }
        var timeout = timeval(connectTimeout)
        return amqp_socket_open_noblock(socket, url.host, Int32(url.port), &timeout) == AMQP_STATUS_OK.rawValue
    }

    private static func timeval(_ duration: Duration) -> Foundation.timeval {
        Foundation.timeval(tv_sec: Int(duration.components.seconds), tv_usec: Int(duration.components.attoseconds / 1_000_000_000_000))
    }

    /// An SSL socket that checks the broker against `options` (never a plain socket in its place).
    private static func tlsSocket(_ state: amqp_connection_state_t, _ options: AMQPTLSOptions) throws(AMQPError) -> OpaquePointer? {
        guard let socket = amqp_ssl_socket_new(state) else { return nil }
        let caFile = options.caFile ?? AMQPTLSOptions.systemBundles.first { FileManager.default.fileExists(atPath: $0) }
        if let caFile, amqp_ssl_socket_set_cacert(socket, caFile) != AMQP_STATUS_OK.rawValue {
            throw .tls("cannot read the CA file \(caFile)")
        }
        if let certFile = options.certFile, let keyFile = options.keyFile, amqp_ssl_socket_set_key(socket, certFile, keyFile) != AMQP_STATUS_OK.rawValue {
            throw .tls("cannot read the client certificate \(certFile) or its key \(keyFile)")
        }
        amqp_ssl_socket_set_verify_peer(socket, options.verify ? 1 : 0)
        amqp_ssl_socket_set_verify_hostname(socket, options.verify ? 1 : 0)
        return socket
    }

    /// Throws when the last RPC did not succeed.
    func checkReply(_ what: String) throws(AMQPError) {
        let reply = amqp_get_rpc_reply(state)
        guard reply.reply_type != AMQP_RESPONSE_NORMAL else { return }
        throw failure(reply, what)
    }

    // MARK: Closing

    /// Opens the channel again after the broker closed it (a channel error: a refused declaration,
    /// a transaction it could not complete); the connection stays.
    func reopenChannel() throws(AMQPError) {
        guard channelClosedByBroker else { return }
        _ = amqp_channel_open(state, Self.channel)
        let reply = amqp_get_rpc_reply(state)
        guard reply.reply_type == AMQP_RESPONSE_NORMAL else { throw failure(reply, "channel.open") }
        channelClosedByBroker = false
    }

    /// Whether the broker still reads what this session sends.
    private var canSend: Bool { !closedByBroker && !socketFailed && amqp_get_sockfd(state) >= 0 }

    /// Closes channel and connection when the broker still listens, each RPC bounded by
    /// `closeTimeout` (a timed-out RPC makes librabbitmq close the socket); after the broker's own
    /// close or a failed socket it sends nothing, so releasing a session never waits on a broker
    /// that ignores frames (RabbitMQ does that for 30 s after its connection.close).
    private func closePolitely() {
        guard canSend else { return }
        limitAnswers(to: Self.closeTimeout)
        if !channelClosedByBroker {
            let reply = amqp_channel_close(state, Self.channel, Int32(AMQP_REPLY_SUCCESS))
            if reply.reply_type != AMQP_RESPONSE_NORMAL { _ = failure(reply, "channel.close") }
        }
        guard canSend else { return }
        _ = amqp_connection_close(state, Int32(AMQP_REPLY_SUCCESS))
    }

    /// Answers a connection.close or channel.close from the broker with its close-ok (until then
    /// the broker reads nothing else) and remembers it for closing. Returns the error the close
    /// stands for; nil, and nothing done, for any other method.
    func acceptClose(_ method: amqp_method_t) -> AMQPError? {
        guard method.id == Method.connectionClose || method.id == Method.channelClose else { return nil }
        let (code, text) = Self.serverClose(method) ?? (0, "closed")
        if method.id == Method.connectionClose {
            if canSend {
                var ok = amqp_connection_close_ok_t()
                _ = amqp_send_method(state, 0, Method.connectionCloseOK, &ok)
            }
            closedByBroker = true
        } else {
            if canSend, !channelClosedByBroker {
                var ok = amqp_channel_close_ok_t()
                _ = amqp_send_method(state, Self.channel, Method.channelCloseOK, &ok)
            }
            channelClosedByBroker = true
        }
        return .broker(code: code, text: text)
    }

    /// The error a failed RPC stands for; a close from the broker is answered (`acceptClose`)
    /// and a failed socket remembered on the way.
    func failure(_ reply: amqp_rpc_reply_t, _ what: String) -> AMQPError {
        switch reply.reply_type {
        case AMQP_RESPONSE_SERVER_EXCEPTION: _ = acceptClose(reply.reply)
        case AMQP_RESPONSE_LIBRARY_EXCEPTION: noteFailure(reply.library_error)
        default: break
        }
        return Self.error(reply, what)
    }

    /// The error a failed librabbitmq call stands for (`what: reason`, or the reason alone);
    /// a failed socket is remembered on the way.
    func failure(status: Int32, _ what: String? = nil) -> AMQPError {
        noteFailure(status)
        let reason = String(cString: amqp_error_string2(status))
        return .connection(what.map { "\($0): \(reason)" } ?? reason)
    }

    private func noteFailure(_ status: Int32) {
        if Self.socketFailures.contains(status) { socketFailed = true }
    }

    /// librabbitmq's statuses after which the socket is gone (a timed-out RPC closes it too).
    private static let socketFailures: Set<Int32> = [
        AMQP_STATUS_CONNECTION_CLOSED.rawValue, AMQP_STATUS_SOCKET_ERROR.rawValue, AMQP_STATUS_SOCKET_CLOSED.rawValue,
        AMQP_STATUS_HEARTBEAT_TIMEOUT.rawValue, AMQP_STATUS_TIMEOUT.rawValue, AMQP_STATUS_TCP_ERROR.rawValue,
        AMQP_STATUS_SSL_ERROR.rawValue, AMQP_STATUS_SSL_CONNECTION_FAILED.rawValue,
    ]

    private static func error(_ reply: amqp_rpc_reply_t, _ what: String) -> AMQPError {
        if reply.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION, let (code, text) = serverClose(reply.reply) {
            return .broker(code: code, text: "\(what): \(text)")
        }
        return .connection("\(what): \(describe(reply))")
    }

    static func describe(_ reply: amqp_rpc_reply_t) -> String {
        switch reply.reply_type {
        case AMQP_RESPONSE_NORMAL: return "ok"
        case AMQP_RESPONSE_NONE: return "no reply"
        case AMQP_RESPONSE_LIBRARY_EXCEPTION: return String(cString: amqp_error_string2(reply.library_error))
        default:
            if let (code, text) = serverClose(reply.reply) { return "\(code) \(text)" }
            return "server error (method \(String(reply.reply.id, radix: 16)))"
        }
    }

    /// The code and text of a connection.close or channel.close method.
    static func serverClose(_ method: amqp_method_t) -> (Int, String)? {
        guard let decoded = method.decoded else { return nil }
        switch method.id {
        case Method.connectionClose:
            let close = decoded.assumingMemoryBound(to: amqp_connection_close_t.self).pointee
            return (Int(close.reply_code), AMQPDecode.string(close.reply_text))
        case Method.channelClose:
            let close = decoded.assumingMemoryBound(to: amqp_channel_close_t.self).pointee
            return (Int(close.reply_code), AMQPDecode.string(close.reply_text))
        default:
            return nil
        }
    }

    /// Declares a queue (passive: only checks it and reads its depth). Returns the message count.
    /// `exclusive`: the connection's own, deleted when it closes; another connection's declare is refused (405).
    func declareQueue(_ name: String, passive: Bool, durable: Bool, exclusive: Bool = false, arguments: AMQPTable) throws(AMQPError) -> Int {
        let arena = CArena()
        guard let ok = amqp_queue_declare(state, Self.channel, arena.bytes(name), passive ? 1 : 0, durable ? 1 : 0, exclusive ? 1 : 0, exclusive ? 1 : 0,
                                          arena.table(arguments)) else {
            throw failure(amqp_get_rpc_reply(state), "declare queue `\(name)`")
        }
        return Int(ok.pointee.message_count)
    }

    func declareExchange(_ name: String, type: String, durable: Bool) throws(AMQPError) {
        let arena = CArena()
        guard amqp_exchange_declare(state, Self.channel, arena.bytes(name), arena.bytes(type), 0, durable ? 1 : 0, 0, 0, amqp_table_t(num_entries: 0, entries: nil)) != nil else {
            throw failure(amqp_get_rpc_reply(state), "declare exchange `\(name)`")
        }
    }

    func bind(queue: String, exchange: String, routingKey: String) throws(AMQPError) {
        let arena = CArena()
        guard amqp_queue_bind(state, Self.channel, arena.bytes(queue), arena.bytes(exchange), arena.bytes(routingKey), amqp_table_t(num_entries: 0, entries: nil)) != nil else {
            throw failure(amqp_get_rpc_reply(state), "bind `\(queue)` to `\(exchange)`")
        }
    }

    func deleteQueue(_ name: String, ifEmpty: Bool = false) throws(AMQPError) {
        let arena = CArena()
        guard amqp_queue_delete(state, Self.channel, arena.bytes(name), 0, ifEmpty ? 1 : 0) != nil else {
            throw failure(amqp_get_rpc_reply(state), "delete queue `\(name)`")
        }
    }
}
