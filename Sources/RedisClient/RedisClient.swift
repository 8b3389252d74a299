import Logging
import Synchronization

/// A Redis client over hiredis: a small pool of connections, each on its own
/// thread, with timeouts on every call, reconnect with backoff, automatic
/// pipelining of concurrent commands, and Lua scripts by `EVALSHA` with `EVAL` fallback.
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let connections: [RedisConnection]
    private let next = Atomic<Int>(0)
    private let scriptHashes = Mutex<[String: String]>([:])

    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
        connections = (0..<configuration.poolSize).map { RedisConnection(configuration: configuration, index: $0) }
    }

    /// Connects every pooled connection now; reports a wrong password or database, or an unreachable server.
    public func connect() async throws(RedisError) {
        for connection in connections {
            if case .failure(let error) = await connection.connectNow() { throw error }
        }
    }

    /// Runs a command (binary-safe arguments); an error reply is returned as `.error`, not thrown.
    public func send(_ arguments: [String]) async throws(RedisError) -> RedisReply {
        try await send(bytes: arguments.map { Array($0.utf8) })
    }

    /// Runs a command given as byte strings.
    public func send(bytes arguments: [[UInt8]]) async throws(RedisError) -> RedisReply {
        let index = next.add(1, ordering: .relaxed).oldValue % connections.count
        return try await connections[abs(index)].send(arguments).get()
    }

    /// Runs a command and turns an error reply into a thrown `RedisError.server`.
    public func checked(_ arguments: [String]) async throws(RedisError) -> RedisReply {
        let reply = try await send(arguments)
        if case .error(let message) = reply { throw .server(message) }
        return reply
    }

    /// Runs a Lua script by its SHA1, loading it on first use and again after a server restart.
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RedisReply {
        var sha = scriptHashes.withLock { $0[script.source] }
        if sha == nil {
            guard let loaded = try await checked(["SCRIPT", "LOAD", script.source]).string else {
                throw .server("SCRIPT LOAD gave no hash")
            }
            scriptHashes.withLock { $0[script.source] = loaded }
            sha = loaded
        }
        let tail = [String(keys.count)] + keys + arguments
        let reply = try await send(["EVALSHA", sha ?? ""] + tail)
        if case .error(let message) = reply, message.hasPrefix("NOSCRIPT") {
            return try await checked(["EVAL", script.source] + tail)
        }
        if case .error(let message) = reply { throw .server(message) }
        return reply
    }
}

/// A Lua script run with `EVALSHA`.
public struct RedisScript: Sendable, Hashable {
    public let source: String

    public init(_ source: String) {
        self.source = source
    }
}
