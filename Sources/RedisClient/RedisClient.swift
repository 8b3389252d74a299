import Crypto
import Logging
import Synchronization

/// A Redis client over hiredis: a small pool of connections, each on its own
/// thread, with timeouts on every call, reconnect with backoff, automatic
/// pipelining of concurrent commands, and Lua scripts by `EVALSHA` with `EVAL` fallback.
/// With `cluster` seeds, a pool per master of a Redis Cluster (`ClusterRouter`).
public final class RedisClient: Sendable {
    public let configuration: RedisConfiguration
    private let connections: [RedisConnection]
    private let router: ClusterRouter?
    private let next = Atomic<Int>(0)

    public init(configuration: RedisConfiguration) {
        self.configuration = configuration
        router = configuration.cluster.isEmpty ? nil : ClusterRouter(configuration: configuration)
        let connectivity = PoolConnectivity()
        connections = router != nil ? [] : (0..<configuration.poolSize).map { RedisConnection(configuration: configuration, index: $0, pool: connectivity) }
    }

    /// Whether commands go to a Redis Cluster: then a script's keys must share a slot (`ClusterSlot`).
    public var isCluster: Bool { router != nil }

    /// The masters a command for every key must reach (`SCAN`): the cluster's, or none for a single server.
    public func masters() -> [RedisAddress] {
        router?.masters() ?? []
    }

    /// Runs a command on one master of the cluster (a single server: the server).
    public func send(_ arguments: [String], to node: RedisAddress) async throws(RedisError) -> RedisReply {
        guard let router else { return try await send(arguments) }
        return try await router.send(arguments.map { Array($0.utf8) }, to: node).get()
    }

    /// Whether Redis answers `PING` — on a Redis Cluster every master the slot map knows, at once (a
    /// master that does not answer leaves its slots' keys unreachable until a replica takes over,
    /// while the others answer); nil when all do, else what the first that did not said.
    public func unansweredPing() async -> String? {
        let ping: [[UInt8]] = [Array("PING".utf8)]
        guard let router else { return Self.problem(ofPingAnswer: await nextConnection().send(RedisCommand(ping))) }
        let nodes = router.masters()
        guard !nodes.isEmpty else { return Self.problem(ofPingAnswer: await router.send(ping)) }
        return await withTaskGroup(of: String?.self) { group in
            for node in nodes {
                group.addTask { Self.problem(ofPingAnswer: await router.send(ping, to: node)).map { "master \(node): \($0)" } }
            }
            var first: String?
            for await problem in group where first == nil { first = problem }
            return first
        }
    }

    private static func problem(ofPingAnswer answer: Result<RedisReply, RedisError>) -> String? {
        switch answer {
        case .success(.status("PONG")): nil
        case .success(let reply): "unexpected PING answer: \(reply)"
        case .failure(let error): error.description
        }
    }

    /// Connects every pooled connection now; reports a wrong password or database, or an unreachable server.
    public func connect() async throws(RedisError) {
        if let router { return try await router.connect() }
        for connection in connections {
            if case .failure(let error) = await connection.connectNow() { throw error }
        }
    }

    /// Runs a command given as text (sent as its UTF-8 bytes); an error reply is returned as `.error`, not thrown.
    public func send(_ arguments: [String]) async throws(RedisError) -> RedisReply {
        if let router { return try await router.send(arguments.map { Array($0.utf8) }).get() }
        return try await nextConnection().send(RedisCommand(arguments.map(\.utf8))).get()
    }

    /// Runs a command given as byte strings (binary-safe: any bytes, NUL included).
    public func send(bytes arguments: [[UInt8]]) async throws(RedisError) -> RedisReply {
        if let router { return try await router.send(arguments).get() }
        return try await nextConnection().send(RedisCommand(arguments)).get()
    }

    /// The pooled connections in turn.
    private func nextConnection() -> RedisConnection {
        connections[abs(next.add(1, ordering: .relaxed).oldValue % connections.count)]
    }

    /// Runs a command and turns an error reply into a thrown `RedisError.server`.
    public func checked(_ arguments: [String]) async throws(RedisError) -> RedisReply {
        let reply = try await send(arguments)
        if case .error(let message) = reply { throw .server(message) }
        return reply
    }

    /// Runs a Lua script by its SHA1; a server that does not know it yet (first use, a restart, a
    /// failover, another master of a cluster) gets it by `EVAL`, which runs it and keeps it.
    public func evaluate(_ script: RedisScript, keys: [String], arguments: [String]) async throws(RedisError) -> RedisReply {
        let tail = [String(keys.count)] + keys + arguments
        let reply = try await send(["EVALSHA", script.sha] + tail)
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
    /// Its SHA1 in hex, as Redis names it: computed once, where the script is made (a `static let`),
    /// not looked up by the script's text for every call.
    public let sha: String

    public init(_ source: String) {
        self.source = source
        let digits = Array("0123456789abcdef".utf8)
        sha = String(decoding: Insecure.SHA1.hash(data: Array(source.utf8)).flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] }, as: UTF8.self)
    }
}
