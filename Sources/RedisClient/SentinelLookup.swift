import CHiredis

/// Asks the Sentinels, in turn, where the master is (`SENTINEL get-master-addr-by-name`).
/// Blocking: called on a connection's own queue when it (re)connects.
enum SentinelLookup {
    static func master(_ sentinel: RedisSentinelConfiguration, connectTimeout: Duration, commandTimeout: Duration) -> Result<RedisAddress, RedisError> {
        var problems: [String] = []
        for address in sentinel.sentinels {
            switch ask(address, sentinel, connectTimeout: connectTimeout, commandTimeout: commandTimeout) {
            case .success(let master): return .success(master)
            case .failure(.authentication(let reason)): return .failure(.authentication(reason))
            case .failure(let error): problems.append("\(address): \(error)")
            }
        }
        return .failure(.unavailable("no Sentinel knows the master `\(sentinel.masterName)`: \(problems.joined(separator: "; "))"))
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
            case .success(.error(let message)): return .failure(.authentication("AUTH failed at Sentinel \(address) (sentinel_password): \(message)"))
            case .failure(let error): return .failure(error)
            case .success: break
            }
        }
        switch RedisConnection.execute(context, ["SENTINEL", "get-master-addr-by-name", sentinel.masterName].map { Array($0.utf8) }) {
        case .success(.array(let parts)) where parts.count == 2:
            guard let host = parts[0].string, let port = parts[1].string.flatMap(Int.init) else { return .failure(.server("unreadable answer")) }
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
