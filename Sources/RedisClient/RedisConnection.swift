import CHiredis
import Dispatch
import Foundation
import Synchronization

/// One hiredis context, used only on its own serial queue (never on Swift's cooperative pool).
///
/// Commands submitted while the queue is busy are sent together as one pipeline:
/// concurrent callers share round trips. A broken or timed-out context is freed
/// and reconnected on a later command, with backoff. Each connect checks the server's `ROLE` (with
/// Sentinel, after asking a Sentinel where the master is); a `READONLY` answer (the server was
/// demoted by a failover) drops the connection, so a later command finds the new master.
final class RedisConnection: @unchecked Sendable {
    private struct Pending {
        var command: RedisCommand
        /// Preceded by `ASKING` (a Redis Cluster `ASK` redirection), on the same connection.
        var asking: Bool
        var continuation: CheckedContinuation<Result<RedisReply, RedisError>, Never>
    }

    private struct Queue {
        var items: [Pending] = []
        var drainScheduled = false
    }

    private let configuration: RedisConfiguration
    private let queue: DispatchQueue
    private let pending = Mutex(Queue())
    // Touched only on `queue`.
    private var context: UnsafeMutablePointer<redisContext>?
    /// The server `context` is connected to.
    private var address: RedisAddress?
    private var retryAt: ContinuousClock.Instant?
    /// When the last attempt to connect failed.
    private var failedAt: ContinuousClock.Instant?
    private let pool: PoolConnectivity
    private var backoff: Duration = .milliseconds(50)

    init(configuration: RedisConfiguration, index: Int, pool: PoolConnectivity) {
        self.configuration = configuration
        self.pool = pool
        queue = DispatchQueue(label: "redis.connection.\(index)")
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// Runs one command (after `ASKING` when `asking`). An empty command is refused, not sent:
    /// Redis would answer nothing to it, and every reply after it would reach the wrong caller.
    func send(_ command: RedisCommand, asking: Bool = false) async -> Result<RedisReply, RedisError> {
        guard !command.isEmpty else { return .failure(.server("an empty command (not sent)")) }
        return await withCheckedContinuation { continuation in
            let schedule = pending.withLock { state in
                state.items.append(Pending(command: command, asking: asking, continuation: continuation))
                defer { state.drainScheduled = true }
                return !state.drainScheduled
            }
            if schedule { queue.async { self.drain() } }
        }
    }

    /// Connects now (on the connection's queue), to report a wrong password or database at start.
    func connectNow() async -> Result<Void, RedisError> {
        await withCheckedContinuation { continuation in
            queue.async {
                continuation.resume(returning: self.ensureConnected(force: true))
            }
        }
    }

    private func drain() {
        let batch = pending.withLock { state in
            defer {
                state.items = []
                state.drainScheduled = false
            }
            return state.items
        }
        guard !batch.isEmpty else { return }
        if case .failure(let error) = ensureConnected(force: false) {
            batch.forEach { $0.continuation.resume(returning: .failure(error)) }
            return
        }
        guard let context else { return }
        var appended = 0
        for item in batch {
            if item.asking, Self.asking.append(to: context) != REDIS_OK { break }
            if item.command.append(to: context) != REDIS_OK { break }
            appended += 1
        }
        var broken: RedisError?
        for (index, item) in batch.enumerated() {
            if let broken {
                item.continuation.resume(returning: .failure(broken))
                continue
            }
            guard index < appended else {
                broken = disconnect(reason: Self.errorText(context))
                item.continuation.resume(returning: .failure(broken ?? .unavailable("write failed")))
                continue
            }
            var raw: UnsafeMutableRawPointer?
            if item.asking {
                guard redisGetReply(context, &raw) == REDIS_OK, let answer = raw else {
                    broken = disconnect(reason: Self.errorText(context))
                    item.continuation.resume(returning: .failure(broken ?? .unavailable("no reply")))
                    continue
                }
                freeReplyObject(answer)
                raw = nil
            }
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                broken = disconnect(reason: Self.errorText(context))
                item.continuation.resume(returning: .failure(broken ?? .unavailable("no reply")))
                continue
            }
            let reply = Self.copy(raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            if case .error(let message) = reply, message.hasPrefix("READONLY") {
                broken = disconnect(reason: "\(address?.description ?? "the server") is a replica now (a failover?); finding the master again")
                // Not at once: a name that still points at the replica would be connected to again for every batch.
                backOff()
                item.continuation.resume(returning: .failure(broken ?? .unavailable(message)))
                continue
            }
            item.continuation.resume(returning: .success(reply))
        }
    }

    private static let asking = RedisCommand(["ASKING".utf8])

    /// Whether an error answer to `AUTH` or `SELECT` refuses the credentials or the database
    /// (`WRONGPASS`, `NOAUTH`, `NOPERM`, `ERR invalid password`, `ERR AUTH … without any password
    /// configured`, `ERR DB index is out of range`) rather than reporting a server not yet usable.
    static func isRefusal(_ message: String) -> Bool {
        ["WRONGPASS", "NOAUTH", "NOPERM", "ERR invalid password", "ERR AUTH", "ERR Client sent AUTH", "ERR DB index", "ERR invalid DB index"]
            .contains { message.hasPrefix($0) }
    }

    private func disconnect(reason: String) -> RedisError {
        if let context { redisFree(context) }
        context = nil
        address = nil
        retryAt = .now
        return .unavailable(reason)
    }

    private func ensureConnected(force: Bool) -> Result<Void, RedisError> {
        if context != nil { return .success(()) }
        if !force, let retryAt, ContinuousClock.now < retryAt, !(failedAt.map(pool.connected(after:)) ?? false) {
            return .failure(.unavailable("cannot reach \(target); retrying"))
        }
        let candidates: [RedisAddress]
        if let sentinel = configuration.sentinel {
            switch SentinelLookup.masters(sentinel, connectTimeout: configuration.connectTimeout, commandTimeout: configuration.commandTimeout) {
            case .success(let masters): candidates = masters
            case .failure(let error): return scheduleRetry(error)
            }
        } else {
            candidates = [RedisAddress(host: configuration.host, port: configuration.port)]
        }
        // With Sentinel, a stale Sentinel may name a replica or a dead server: the next one named is tried.
        var lastError = RedisError.unavailable("no master named")
        for server in candidates {
            switch connect(to: server) {
            case .success(let fresh):
                context = fresh
                address = server
                retryAt = nil
                failedAt = nil
                pool.connected()
                backoff = .milliseconds(50)
                return .success(())
            case .failure(let error):
                if case .authentication = error { return scheduleRetry(error) }
                lastError = error
            }
        }
        return scheduleRetry(lastError)
    }

    /// A context on `server`, logged in, on the configured database, and a master.
    private func connect(to server: RedisAddress) -> Result<UnsafeMutablePointer<redisContext>, RedisError> {
        let fresh: UnsafeMutablePointer<redisContext>
        switch Self.open(server, connectTimeout: configuration.connectTimeout, commandTimeout: configuration.commandTimeout) {
        case .success(let opened): fresh = opened
        case .failure(let error): return .failure(error)
        }
        var setup: [[String]] = []
        if let password = configuration.password, !password.isEmpty { setup.append(["AUTH", password]) }
        if configuration.database != 0 { setup.append(["SELECT", String(configuration.database)]) }
        // Sentinel's answer can be stale (a failover under way): only a master is used.
        // So is a host that names a replica (a DNS name or address still on the demoted master after a failover).
        setup.append(["ROLE"])
        for command in setup {
            switch Self.execute(fresh, command.map { Array($0.utf8) }) {
            case .success(.error) where command[0] == "ROLE":
                // A user without ROLE (an ACL without @admin) cannot check; READONLY answers still tell a replica.
                continue
            case .success(.error(let message)):
                redisFree(fresh)
                let what = command[0] == "SELECT" ? "SELECT \(configuration.database)" : command[0]
                // A server at `maxclients`, loading its data or busy with a script answers the first command with
                // an error too: that is a server not yet usable (retried), not credentials refused (which stop a start).
                guard Self.isRefusal(message) else { return .failure(.unavailable("\(what) not answered at \(server): \(message)")) }
                return .failure(.authentication("\(what) failed at \(server): \(message)"))
            case .success(.array(let role)) where command[0] == "ROLE" && role.first?.string != "master":
                redisFree(fresh)
                return .failure(.unavailable("\(server) is a \(role.first?.string ?? "server of unknown role"), not the master"))
            case .failure(let error):
                redisFree(fresh)
                return .failure(error)
            case .success:
                continue
            }
        }
        return .success(fresh)
    }

    /// What this connection reaches, for messages.
    private var target: String {
        if let sentinel = configuration.sentinel { return "the master `\(sentinel.masterName)` (through Sentinel)" }
        return "\(configuration.host):\(configuration.port)"
    }

    /// A connected context with the command timeout set.
    static func open(_ server: RedisAddress, connectTimeout: Duration, commandTimeout: Duration) -> Result<UnsafeMutablePointer<redisContext>, RedisError> {
        guard let fresh = redisConnectWithTimeout(server.host, Int32(server.port), timeval(connectTimeout)) else {
            return .failure(.unavailable("cannot allocate a hiredis context"))
        }
        if fresh.pointee.err != 0 {
            let reason = errorText(fresh)
            redisFree(fresh)
            return .failure(.unavailable("cannot connect to \(server): \(reason)"))
        }
        redisSetTimeout(fresh, timeval(commandTimeout))
        return .success(fresh)
    }

    private func scheduleRetry(_ error: RedisError) -> Result<Void, RedisError> {
        backOff()
        return .failure(error)
    }

    /// The next connection attempt waits `backoff` (doubling up to 2 s), unless another connection of the pool connects meanwhile.
    private func backOff() {
        failedAt = .now
        retryAt = .now + backoff
        backoff = min(backoff * 2, .seconds(2))
    }

    static func execute(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [[UInt8]]) -> Result<RedisReply, RedisError> {
        guard RedisCommand(arguments).append(to: context) == REDIS_OK else { return .failure(.unavailable(errorText(context))) }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { return .failure(.unavailable(errorText(context))) }
        defer { freeReplyObject(raw) }
        return .success(copy(raw.assumingMemoryBound(to: redisReply.self)))
    }

    private static func copy(_ reply: UnsafeMutablePointer<redisReply>) -> RedisReply {
        let value = reply.pointee
        switch value.type {
        case REDIS_REPLY_STRING:
            guard let str = value.str else { return .bulk([]) }
            return .bulk(Array(UnsafeRawBufferPointer(start: str, count: Int(value.len))))
        case REDIS_REPLY_STATUS:
            return .status(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_ERROR:
            return .error(value.str.map { String(cString: $0) } ?? "")
        case REDIS_REPLY_INTEGER:
            return .integer(Int(value.integer))
        case REDIS_REPLY_ARRAY:
            var items: [RedisReply] = []
            for index in 0..<Int(value.elements) {
                if let element = value.element[index] { items.append(copy(element)) }
            }
            return .array(items)
        default:
            return .null
        }
    }

    static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if text.contains("Resource temporarily unavailable") { return "timed out" }
        return text.isEmpty ? "connection lost" : text
    }

    static func timeval(_ duration: Duration) -> Foundation.timeval {
        let (seconds, attoseconds) = duration.components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return Foundation.timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
    }
}
