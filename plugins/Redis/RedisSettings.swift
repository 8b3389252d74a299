import PipelineKit
import RedisClient

/// The settings of the `redis` resource (also taken by its in-memory stand-in).
public enum RedisSettings {
    static let host = Setting.string("host", default: "localhost", "Redis host")
    static let port = Setting.integer("port", 1...65535, default: 6379, "Redis port")
    static let password = Setting.optionalString("password", default: "", secrecy: .secret, "AUTH password; empty for none")
    static let database = Setting.integer("db", 0...15, default: 0, "database number (SELECT)")
    static let commandTimeout = Setting.duration("command_timeout", default: .milliseconds(250), "a command slower than this counts as Redis unavailable")
    static let connectTimeout = Setting.duration("connect_timeout", default: .seconds(1), "time limit of a connection attempt")
    static let poolSize = Setting.integer("pool_size", 1...64, default: 4, "connections, each on its own thread; concurrent commands are pipelined (on a cluster, shared among the masters)")
    static let sentinels = Setting.addresses("sentinels", "Sentinels (host:port, a list or comma-separated) that know the master; `host` and `port` are then not used; empty: no Sentinel")
    static let masterName = Setting.optionalString("master_name", default: "", "the master's name at the Sentinels (needed with `sentinels`)")
    static let sentinelPassword = Setting.optionalString("sentinel_password", default: "", secrecy: .secret, "the Sentinels' own password; empty for none")
    static let cluster = Setting.addresses("cluster", "seeds (host:port, a list or comma-separated) of a Redis Cluster: each key goes to the master of its slot; `host`, `port` and `db` are then not used, `password` applies to every node; empty: no cluster")

    /// Buckets of per-wamid state when `state_buckets` is not written.
    public static let defaultStateBuckets = 1024
    static let stateBuckets = Setting.integer("state_buckets", 1...16_777_216, default: defaultStateBuckets,
                                              "hashes the per-wamid state (wamid mapping, status order) is spread over; about one per 100 wamids kept at once (README: sizing Redis); the same in every pipeline on this Redis")

    public static let schema = SettingsSchema(host, port, password, database, commandTimeout, connectTimeout, poolSize, sentinels, masterName, sentinelPassword, cluster, stateBuckets)

    static func configuration(_ settings: Settings) -> RedisConfiguration {
        let addresses = settings[sentinels].compactMap(HostPort.init).map { RedisAddress(host: $0.host, port: $0.port) }
        let sentinel = addresses.isEmpty ? nil
            : RedisSentinelConfiguration(sentinels: addresses, masterName: settings[masterName] ?? "", password: settings[sentinelPassword])
        let seeds = settings[cluster].compactMap(HostPort.init).map { RedisAddress(host: $0.host, port: $0.port) }
        return RedisConfiguration(
            host: settings[host], port: settings[port], password: settings[password], database: seeds.isEmpty ? settings[database] : 0,
            connectTimeout: settings[connectTimeout], commandTimeout: settings[commandTimeout], poolSize: settings[poolSize], sentinel: sentinel,
            cluster: seeds)
    }

    /// `sentinels` needs `master_name`; `master_name` alone names nothing; a cluster has no Sentinels.
    static func check(_ resource: ComponentDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
        let settings = resource.settings
        // hiredis reads a zero read limit as none, and gives up a connection at once with a zero connect limit.
        for (name, limit, zero) in [("command_timeout", commandTimeout, "0 would wait for good on a Redis that hangs"),
                                    ("connect_timeout", connectTimeout, "0 gives up every connection at once")] where settings[limit] < .milliseconds(1) {
            return [.error(at: settings.location(of: limit) ?? resource.location,
                           "`\(name)` of resource `\(resource.name)` (redis): at least 1ms (\(zero)), found \(DurationParser.format(settings[limit]))")]
        }
        let hasSentinels = !settings[sentinels].isEmpty
        if hasSentinels, !settings[cluster].isEmpty {
            return [.error(at: settings.location(of: cluster) ?? resource.location, "resource `\(resource.name)` (redis): `cluster` and `sentinels` exclude each other: a Redis Cluster fails over by itself")]
        }
        if !settings[cluster].isEmpty, settings[database] != 0 {
            return [.error(at: settings.location(of: database) ?? resource.location, "resource `\(resource.name)` (redis): a Redis Cluster has only database 0; `db` is \(settings[database])")]
        }
        if hasSentinels, settings[masterName] == nil {
            return [.error(at: settings.location(of: sentinels) ?? resource.location, "resource `\(resource.name)` (redis): `sentinels` needs `master_name`, the name the Sentinels monitor the master by")]
        }
        if !hasSentinels, settings[masterName] != nil {
            return [.warning(at: settings.location(of: masterName) ?? resource.location, "resource `\(resource.name)` (redis): `master_name` is used only with `sentinels`")]
        }
        return []
    }
}
