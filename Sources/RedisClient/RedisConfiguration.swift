/// Where and how to connect.
public struct RedisConfiguration: Sendable, Equatable {
    public var host: String
    public var port: Int
    public var password: String?
    public var database: Int
    public var connectTimeout: Duration
    public var commandTimeout: Duration
    public var poolSize: Int
    /// When set, the master is found through Sentinel (and `host`/`port` are not used).
    public var sentinel: RedisSentinelConfiguration?
    /// Seeds of a Redis Cluster: when not empty, each command goes to the master of its key's
    /// slot (and `host`, `port`, `database` and `sentinel` are not used).
    public var cluster: [RedisAddress]

    public init(host: String = "localhost", port: Int = 6379, password: String? = nil, database: Int = 0,
                connectTimeout: Duration = .seconds(1), commandTimeout: Duration = .milliseconds(250), poolSize: Int = 4,
                sentinel: RedisSentinelConfiguration? = nil, cluster: [RedisAddress] = []) {
        self.host = host
        self.port = port
        self.password = password
        self.database = database
        self.connectTimeout = connectTimeout
        self.commandTimeout = commandTimeout
        self.poolSize = max(1, poolSize)
        self.sentinel = sentinel
        self.cluster = cluster
    }
}

/// The Sentinels that know the master, and its name there.
public struct RedisSentinelConfiguration: Sendable, Equatable {
    public var sentinels: [RedisAddress]
    public var masterName: String
    /// The Sentinels' own password (`requirepass` of the Sentinels), if any.
    public var password: String?

    public init(sentinels: [RedisAddress], masterName: String, password: String? = nil) {
        self.sentinels = sentinels
        self.masterName = masterName
        self.password = password
    }
}

/// A host and port (written `[::1]:6379` for an IPv6 host, as settings take it).
public struct RedisAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

    /// The ports a server can listen on (what a server's answer names beyond them is no address).
    public static let ports = 1...65535
}
