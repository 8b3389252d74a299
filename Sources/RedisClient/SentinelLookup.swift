import CHiredis

/// Asks the Sentinels where the master is (`SENTINEL get-master-addr-by-name`).
/// Blocking: called on a connection's own queue when it (re)connects.
enum SentinelLookup {
    /// The masters the Sentinels name, the one most of them name first (a stale Sentinel, cut
    /// off or just restarted, may still name the old master); fails when none answers.
    static func masters(_ sentinel: RedisSentinelConfiguration, connectTimeout: Duration, commandTimeout: Duration) -> Result<[RedisAddress], RedisError> {
        var problems: [String] = []
        var named: [(address: RedisAddress, votes: Int)] = []
        asking: for address in sentinel.sentinels {
            switch ask(address, sentinel, connectTimeout: connectTimeout, commandTimeout: commandTimeout) {
            case .success(let master):
                if let index = named.firstIndex(where: { $0.address == master }) { named[index].votes += 1 } else { named.append((master, 1)) }
                // Most of the Sentinels agree: no need to ask the rest (a dead one would cost `connect_timeout`).
                if named.contains(where: { $0.votes > sentinel.sentinels.count / 2 }) { break asking }
            case .failure(.authentication(let reason)):
                return .failure(.authentication(reason))
            case .failure(let error):
                problems.append("\(address): \(error)")
            }
        }
        guard !named.isEmpty else {
            return .failure(.unavailable("no Sentinel knows the master `\(sentinel.masterName)`: \(problems.joined(separator: "; "))"))
        }
        // A stable sort: equal votes keep the Sentinels' order.
        return .success(named.enumerated().sorted { ($0.element.votes, -$0.offset) > ($1.element.votes, -$1.offset) }.map(\.element.address))
    }

    private static func ask(_ address: RedisAddress, _ sentinel: RedisSentinelConfiguration, connectTimeout: Duration, commandTimeout: Duration) -> Result<RedisAddress, RedisError> {
        let context: UnsafeMutablePointer<redisContext>
        switch RedisConnection.open(address, connectTimeout: connectTimeout, commandTimeout: commandTimeout) {
        case .success(let opened): context = opened
        case .failure(let error): return .failure(error)
        }
        defer { redisFree(context) }
        if let password = sentinel.password, !password.isEmpty {
            switch RedisConnection.execute(context, [Array("AUTH".utf8), Array(password.utf8)]) {
            case .success(.error(let message)) where RedisConnection.isRefusal(message):
                return .failure(.authentication("AUTH failed at Sentinel \(address) (sentinel_password): \(message)"))
            case .success(.error(let message)): return .failure(.unavailable("Sentinel \(address) did not answer AUTH: \(message)"))
            case .failure(let error): return .failure(error)
            case .success: break
            }
        }
        switch RedisConnection.execute(context, ["SENTINEL", "get-master-addr-by-name", sentinel.masterName].map { Array($0.utf8) }) {
        case .success(.array(let parts)) where parts.count == 2:
            guard let host = parts[0].string, let port = parts[1].string.flatMap(Int.init), RedisAddress.ports.contains(port) else { return .failure(.server("unreadable answer")) }
            return .success(RedisAddress(host: host, port: port))
        case .success(.error(let message)):
            if message.hasPrefix("NOAUTH") || message.hasPrefix("WRONGPASS") { return .failure(.authentication("Sentinel \(address) wants a password (sentinel_password): \(message)")) }
            return .failure(.server(message))
        case .success:
            return .failure(.server("it does not monitor a master named `\(sentinel.masterName)`"))
        case .failure(let error):
            return .failure(error)
        }
    }
}
