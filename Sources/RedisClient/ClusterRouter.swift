import CHiredis
import Dispatch
import Synchronization

/// Sends each command to the master that serves its key's slot in a Redis Cluster (SPEC 17).
///
/// The slot map comes from `CLUSTER SLOTS` (asked of the known masters, then the seeds) at
/// connect and again whenever the cluster says it changed: a `MOVED` answer moves that slot at
/// once and refreshes the whole map, an `ASK` answer sends the command once to the node named
/// (after `ASKING`, on the same connection), and a master that cannot be reached refreshes the
/// map — at most every 250 ms — until a replica has taken over. Meanwhile its commands fail as
/// `unavailable`, so the steps' degradation policy applies, as with a Sentinel failover.
/// RESP stays hiredis's; each master gets its own pool of `RedisConnection`s.
final class ClusterRouter: Sendable {
    private struct State {
        var map = ClusterSlotMap()
        var pools: [RedisAddress: [RedisConnection]] = [:]
        var refreshing = false
        var lastRefresh: ContinuousClock.Instant?
        var waiting: [CheckedContinuation<Void, Never>] = []
        /// Why the last refresh found no map when a node refused the password (nil otherwise).
        var refused: String?
    }

    private let configuration: RedisConfiguration
    private let state = Mutex(State())
    private let next = Atomic<Int>(0)
    private let refreshQueue = DispatchQueue(label: "redis.cluster.slots")
    static let refreshInterval: Duration = .milliseconds(250)
    static let maxRedirections = 5

    init(configuration: RedisConfiguration) {
        self.configuration = configuration
    }

    /// Reads the slot map; fails when no seed answers `CLUSTER SLOTS`.
    func connect() async throws(RedisError) {
        await refresh()
        let (known, refused) = state.withLock { (!$0.map.masters.isEmpty, $0.refused) }
        if let refused { throw RedisError.authentication(refused) }
        if !known { throw RedisError.unavailable("no node of the Redis Cluster answered CLUSTER SLOTS (seeds: \(seedList))") }
        for master in masters() {
            for connection in pool(of: master) {
                if case .failure(let error) = await connection.connectNow() { throw error }
            }
        }
    }

    /// The masters the map knows.
    func masters() -> [RedisAddress] {
        state.withLock { $0.map.masters }
    }

    /// Runs a command on the master of its key's slot (a keyless one on any master), following redirections.
    func send(_ arguments: [[UInt8]]) async -> Result<RedisReply, RedisError> {
        // No map yet: read it now, unless a read just failed (then fail at once, not after another round of seeds).
        let readNow = state.withLock { state in
            state.map.masters.isEmpty && state.lastRefresh.map { ContinuousClock.now - $0 >= Self.refreshInterval } ?? true
        }
        if readNow { await refresh() }
        let slot = ClusterSlot.key(of: arguments).map { ClusterSlot.of($0) }
        var target = state.withLock { state in slot.flatMap(state.map.master) ?? state.map.masters.first }
        var asking = false
        for _ in 0...Self.maxRedirections {
            guard let node = target else {
                requestRefresh()
                return .failure(.unavailable("no master of the Redis Cluster is known for this key (seeds: \(seedList))"))
            }
            let result = await send(arguments, to: node, asking: asking)
            guard case .success(.error(let message)) = result else { return result }
            if let redirection = Redirection(message, from: node) {
                if redirection.moved {
                    state.withLock { $0.map.move(redirection.slot, to: redirection.node) }
                    requestRefresh()
                }
                target = redirection.node
                asking = !redirection.moved
                continue
            }
            if message.hasPrefix("CLUSTERDOWN") || message.hasPrefix("TRYAGAIN") {
                requestRefresh()
                return .failure(.unavailable("redis cluster: \(message)"))
            }
            return result
        }
        return .failure(.unavailable("redis cluster: more than \(Self.maxRedirections) redirections for one command"))
    }

    /// Runs a command on `node` itself (e.g. `SCAN`, which pages through one node's keys, or the
    /// PING of `/health`); a node that cannot be reached refreshes the map (a replica may have taken
    /// over: an idle worker would otherwise keep the dead master in its map).
    func send(_ arguments: [[UInt8]], to node: RedisAddress, asking: Bool = false) async -> Result<RedisReply, RedisError> {
        let connections = pool(of: node)
        let index = abs(next.add(1, ordering: .relaxed).oldValue % connections.count)
        let result = await connections[index].send(RedisCommand(arguments), asking: asking)
        if case .failure = result { requestRefresh() }
        return result
    }

    private func pool(of node: RedisAddress) -> [RedisConnection] {
        state.withLock { state in
            if let pool = state.pools[node] { return pool }
            var nodeConfiguration = configuration
            nodeConfiguration.host = node.host
            nodeConfiguration.port = node.port
            nodeConfiguration.database = 0
            nodeConfiguration.sentinel = nil
            nodeConfiguration.cluster = []
            let connectivity = PoolConnectivity()
            // `pool_size` connections in all, shared among the masters (each its own thread: more would
            // batch fewer commands a round trip and cost more hand-offs than they save).
            let size = max(1, configuration.poolSize / max(1, state.map.masters.count))
            let pool = (0..<size).map { RedisConnection(configuration: nodeConfiguration, index: $0, pool: connectivity) }
            state.pools[node] = pool
            return pool
        }
    }

    /// Starts a refresh of the slot map unless one ran within `refreshInterval`.
    private func requestRefresh() {
        let start = state.withLock { state -> Bool in
            if state.refreshing { return false }
            if let last = state.lastRefresh, ContinuousClock.now - last < Self.refreshInterval { return false }
            state.refreshing = true
            return true
        }
        if start { refreshQueue.async { self.readSlots() } }
    }

    /// Refreshes the slot map now (or waits for the refresh under way).
    private func refresh() async {
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let start = state.withLock { state -> Bool in
                state.waiting.append(continuation)
                if state.refreshing { return false }
                state.refreshing = true
                return true
            }
            if start { refreshQueue.async { self.readSlots() } }
        }
    }

    /// Asks the known masters, then the seeds, for `CLUSTER SLOTS` (blocking, on `refreshQueue`);
    /// the first answer becomes the map.
    private func readSlots() {
        let candidates = state.withLock { $0.map.masters }
        var found: ClusterSlotMap?
        var refused: String?
        for node in candidates + configuration.cluster.filter({ !candidates.contains($0) }) {
            guard case .success(let context) = RedisConnection.open(node, connectTimeout: configuration.connectTimeout, commandTimeout: configuration.commandTimeout) else { continue }
            defer { redisFree(context) }
            if let password = configuration.password, !password.isEmpty,
               case .success(.error(let message)) = RedisConnection.execute(context, [Array("AUTH".utf8), Array(password.utf8)]) {
                if RedisConnection.isRefusal(message) { refused = "AUTH failed at \(node): \(message)" }
                continue
            }
            if case .success(let reply) = RedisConnection.execute(context, [Array("CLUSTER".utf8), Array("SLOTS".utf8)]),
               let map = ClusterSlotMap(reply, from: node) {
                found = map
                break
            }
        }
        let waiting = state.withLock { state in
            if let found { state.map = found }
            state.refused = found == nil ? refused : nil
            state.refreshing = false
            state.lastRefresh = .now
            defer { state.waiting = [] }
            return state.waiting
        }
        waiting.forEach { $0.resume() }
    }

    private var seedList: String {
        configuration.cluster.map(\.description).joined(separator: ", ")
    }
}

/// A `MOVED slot host:port` or `ASK slot host:port` answer.
struct Redirection: Equatable {
    var moved: Bool
    var slot: Int
    var node: RedisAddress

    /// The redirection in `message`, an answer of `node` (whose host an endpoint without one, `:6380`, means).
    init?(_ message: String, from node: RedisAddress) {
        let parts = message.split(separator: " ")
        // A slot or port out of range is no redirection (it would index past the slot map, or trap connecting).
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]), (0..<ClusterSlot.count).contains(slot),
              let colon = parts[2].lastIndex(of: ":"), let port = Int(parts[2][parts[2].index(after: colon)...]), RedisAddress.ports.contains(port) else { return nil }
        moved = parts[0] == "MOVED"
        self.slot = slot
        let host = String(parts[2][..<colon])
        self.node = RedisAddress(host: host.isEmpty ? node.host : host, port: port)
    }
}
