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
    ])

    static func configuration(_ settings: Settings) throws -> RedisConfiguration {
        RedisConfiguration(
            host: try settings.string("host"), port: try settings.integer("port"), password: settings.optionalString("password"),
            database: try settings.integer("db"), connectTimeout: try settings.duration("connect_timeout"),
            commandTimeout: try settings.duration("command_timeout"), poolSize: try settings.integer("pool_size"))
    }
}
