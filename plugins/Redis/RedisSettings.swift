import PipelineKit
import RedisClient

/// The settings of the `redis` resource (also taken by its in-memory stand-in).
public enum RedisSettings {
    public static let schema = SettingsSchema([
        SettingSpec("host", .string, default: .string("localhost"), "Redis host"),
        SettingSpec("port", .integer(1...65535), default: .integer(6379), "Redis port"),
        SettingSpec("password", .string, default: .string(""), secrecy: .secret, "AUTH password; empty for none"),
        SettingSpec("db", .integer(0...15), default: .integer(0), "database number (SELECT)"),
        SettingSpec("command_timeout", .duration, default: .duration(.milliseconds(250)), "a command slower than this counts as Redis unavailable"),
        SettingSpec("connect_timeout", .duration, default: .duration(.seconds(1)), "time limit of a connection attempt"),
        SettingSpec("pool_size", .integer(1...64), default: .integer(4), "connections, each on its own thread; concurrent commands are pipelined"),
        SettingSpec("sentinels", .addressList, "Sentinels (host:port, a list or comma-separated) that know the master; `host` and `port` are then not used; empty: no Sentinel"),
        SettingSpec("master_name", .string, default: .string(""), "the master's name at the Sentinels (needed with `sentinels`)"),
        SettingSpec("sentinel_password", .string, default: .string(""), secrecy: .secret, "the Sentinels' own password; empty for none"),
    ])

    static func configuration(_ settings: Settings) throws -> RedisConfiguration {
        var sentinel: RedisSentinelConfiguration?
        if settings["sentinels"] != nil {
            let addresses = try settings.strings("sentinels").compactMap(HostPort.init).map { RedisAddress(host: $0.host, port: $0.port) }
            sentinel = RedisSentinelConfiguration(sentinels: addresses, masterName: try settings.string("master_name"), password: settings.optionalString("sentinel_password"))
        }
        return RedisConfiguration(
            host: try settings.string("host"), port: try settings.integer("port"), password: settings.optionalString("password"),
            database: try settings.integer("db"), connectTimeout: try settings.duration("connect_timeout"),
            commandTimeout: try settings.duration("command_timeout"), poolSize: try settings.integer("pool_size"), sentinel: sentinel)
    }

    /// `sentinels` needs `master_name`; `master_name` alone names nothing.
    static func check(_ resource: ComponentDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
        let settings = resource.settings
        let masterName = settings.optionalString("master_name")
        if settings["sentinels"] != nil, masterName == nil {
            return [.error(at: settings["sentinels"]?.location ?? resource.location, "resource `\(resource.name)` (redis): `sentinels` needs `master_name`, the name the Sentinels monitor the master by")]
        }
        if settings["sentinels"] == nil, masterName != nil {
            return [.warning(at: settings["master_name"]?.location ?? resource.location, "resource `\(resource.name)` (redis): `master_name` is used only with `sentinels`")]
        }
        return []
    }
}
