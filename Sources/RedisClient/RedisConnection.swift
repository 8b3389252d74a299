import CHiredis
import Dispatch
import Foundation
import Synchronization

/// One hiredis context, used only on its own serial queue (never on Swift's cooperative pool).
///
/// Commands submitted while the queue is busy are sent together as one pipeline:
/// concurrent callers share round trips. A broken or timed-out context is freed
/// and reconnected on a later command, with backoff.
final class RedisConnection: @unchecked Sendable {
    private struct Pending {
        var arguments: [[UInt8]]
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
    private var retryAt: ContinuousClock.Instant?
    private var backoff: Duration = .milliseconds(50)

    init(configuration: RedisConfiguration, index: Int) {
        self.configuration = configuration
        queue = DispatchQueue(label: "redis.connection.\(index)")
    }

    deinit {
        if let context { redisFree(context) }
    }

    /// Runs one command; the arguments are binary-safe.
    func send(_ arguments: [[UInt8]]) async -> Result<RedisReply, RedisError> {
        await withCheckedContinuation { continuation in
            let schedule = pending.withLock { state in
                state.items.append(Pending(arguments: arguments, continuation: continuation))
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
            if Self.append(context, item.arguments) != REDIS_OK { break }
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
            guard redisGetReply(context, &raw) == REDIS_OK, let raw else {
                broken = disconnect(reason: Self.errorText(context))
                item.continuation.resume(returning: .failure(broken ?? .unavailable("no reply")))
                continue
            }
            let reply = Self.copy(raw.assumingMemoryBound(to: redisReply.self))
            freeReplyObject(raw)
            item.continuation.resume(returning: .success(reply))
        }
    }

    private func disconnect(reason: String) -> RedisError {
        if let context { redisFree(context) }
        context = nil
        retryAt = .now
        return .unavailable(reason)
    }

    private func ensureConnected(force: Bool) -> Result<Void, RedisError> {
        if context != nil { return .success(()) }
        if !force, let retryAt, ContinuousClock.now < retryAt {
            return .failure(.unavailable("cannot connect to \(configuration.host):\(configuration.port); retrying"))
        }
        guard let fresh = redisConnectWithTimeout(configuration.host, Int32(configuration.port), Self.timeval(configuration.connectTimeout)) else {
            return scheduleRetry(.unavailable("cannot allocate a hiredis context"))
        }
        if fresh.pointee.err != 0 {
            let reason = Self.errorText(fresh)
            redisFree(fresh)
            return scheduleRetry(.unavailable("cannot connect to \(configuration.host):\(configuration.port): \(reason)"))
        }
        redisSetTimeout(fresh, Self.timeval(configuration.commandTimeout))
        var setup: [[String]] = []
        if let password = configuration.password, !password.isEmpty { setup.append(["AUTH", password]) }
        if configuration.database != 0 { setup.append(["SELECT", String(configuration.database)]) }
        for command in setup {
            switch Self.execute(fresh, command.map { Array($0.utf8) }) {
            case .success(.error(let message)):
                redisFree(fresh)
                let what = command[0] == "AUTH" ? "AUTH" : "SELECT \(configuration.database)"
                return scheduleRetry(.authentication("\(what) failed at \(configuration.host):\(configuration.port): \(message)"))
            case .failure(let error):
                redisFree(fresh)
                return scheduleRetry(error)
            case .success:
                continue
            }
        }
        context = fresh
        retryAt = nil
        backoff = .milliseconds(50)
        return .success(())
    }

    private func scheduleRetry(_ error: RedisError) -> Result<Void, RedisError> {
        retryAt = .now + backoff
        backoff = min(backoff * 2, .seconds(2))
        return .failure(error)
    }

    private static func execute(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [[UInt8]]) -> Result<RedisReply, RedisError> {
        guard append(context, arguments) == REDIS_OK else { return .failure(.unavailable(errorText(context))) }
        var raw: UnsafeMutableRawPointer?
        guard redisGetReply(context, &raw) == REDIS_OK, let raw else { return .failure(.unavailable(errorText(context))) }
        defer { freeReplyObject(raw) }
        return .success(copy(raw.assumingMemoryBound(to: redisReply.self)))
    }

    private static func append(_ context: UnsafeMutablePointer<redisContext>, _ arguments: [[UInt8]]) -> Int32 {
        let lengths = arguments.map(\.count)
        let buffers = arguments.map { bytes -> UnsafeMutablePointer<CChar> in
            let buffer = UnsafeMutablePointer<CChar>.allocate(capacity: max(bytes.count, 1))
            bytes.withUnsafeBufferPointer { source in
                source.withMemoryRebound(to: CChar.self) { chars in
                    if let base = chars.baseAddress { buffer.initialize(from: base, count: bytes.count) }
                }
            }
            return buffer
        }
        defer { buffers.forEach { $0.deallocate() } }
        var pointers: [UnsafePointer<CChar>?] = buffers.map { UnsafePointer($0) }
        return pointers.withUnsafeMutableBufferPointer { argv in
            lengths.withUnsafeBufferPointer { argvlen in
                redisAppendCommandArgv(context, Int32(arguments.count), argv.baseAddress, argvlen.baseAddress)
            }
        }
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

    private static func errorText(_ context: UnsafeMutablePointer<redisContext>) -> String {
        let text = withUnsafeBytes(of: context.pointee.errstr) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
        if text.contains("Resource temporarily unavailable") { return "timed out" }
        return text.isEmpty ? "connection lost" : text
    }

    private static func timeval(_ duration: Duration) -> Foundation.timeval {
        let (seconds, attoseconds) = duration.components
        let microseconds = seconds * 1_000_000 + attoseconds / 1_000_000_000_000
        return Foundation.timeval(tv_sec: Int(microseconds / 1_000_000), tv_usec: Int(microseconds % 1_000_000))
    }
}
