import Logging

/// Whether a resource or source can do its work right now.
public enum HealthStatus: Sendable, Equatable {
    case up
    case down(String)
}

/// A shared connection or client that steps use (a Redis pool, an HTTP client), named under `resources:`.
///
/// ```swift
/// final class Clock: Resource {
///     func health() async -> HealthStatus { .up }
///     func shutdown() async {}
/// }
/// ```
public protocol Resource: Sendable {
    /// A cheap liveness check for `/health`.
    func health() async -> HealthStatus
    /// Closes connections; called once when the pipeline that built it is retired.
    func shutdown() async
}

/// What a resource plugin gets to build one instance.
public struct ResourceBuildContext: Sendable {
    /// The resource's name under `resources:`.
    public var name: String
    public var settings: Settings
    /// The resources built before this one: those it names in its settings among them.
    public var resources: Resources
    public var logger: Logger

    public init(name: String, settings: Settings, resources: Resources = Resources(), logger: Logger) {
        self.name = name
        self.settings = settings
        self.resources = resources
        self.logger = logger
    }
}

/// A resource kind (`uses:` under `resources:`): its settings and how to build it.
///
/// ```swift
/// enum ClockSettings {
///     static let offset = Setting.duration("offset", default: .zero, "added to the system clock")
///     static let schema = SettingsSchema(offset)
/// }
///
/// extension ResourcePlugin {
///     static let clock = ResourcePlugin(
///         name: "clock", summary: "a shared clock", settings: ClockSettings.schema,
///         make: { context in Clock(offset: context.settings[ClockSettings.offset]) })
/// }
/// // a step takes it by the name its pipeline gave it:
/// // let clock = try context.resources.get(context.settings[MySettings.clock], as: Clock.self)
/// ```
///
/// Resources are built before the steps (in the order they are listed, so one may use another
/// named in its settings) and shut down when the pipeline that built them is retired.
public struct ResourcePlugin: Sendable {
    public var name: String
    public var summary: String
    public var settings: SettingsSchema
    /// The setting that limits how long one call may take, if it has one: other plugins' rules use it
    /// (`PipelineDefinition.callTimeouts`), e.g. a claim's lease must outlast the slowest send.
    public var callTimeout: Setting<Duration>?
    /// Rules across settings, run by `check` after every setting is valid.
    public var check: (@Sendable (ComponentDefinition, PipelineDefinition) -> [Diagnostic])?
    public var make: @Sendable (ResourceBuildContext) async throws -> any Resource

    public init(name: String, summary: String, settings: SettingsSchema, callTimeout: Setting<Duration>? = nil,
                check: (@Sendable (ComponentDefinition, PipelineDefinition) -> [Diagnostic])? = nil,
                make: @escaping @Sendable (ResourceBuildContext) async throws -> any Resource) {
        self.name = name
        self.summary = summary
        self.settings = settings
        self.callTimeout = callTimeout
        self.check = check
        self.make = make
    }
}

/// The built resources of a pipeline, by name.
public struct Resources: Sendable {
    public var byName: [String: any Resource]

    public init(_ byName: [String: any Resource] = [:]) {
        self.byName = byName
    }

    /// The resource called `name` if there is one of that type.
    public func optional<R>(_ name: String, as type: R.Type) -> R? {
        byName[name] as? R
    }

    /// The resource called `name`, as the type a step needs.
    public func get<R>(_ name: String, as type: R.Type) throws(SettingsError) -> R {
        guard let resource = byName[name] else { throw SettingsError(message: "no resource named `\(name)`") }
        guard let typed = resource as? R else { throw SettingsError(message: "resource `\(name)` is not a \(R.self)") }
        return typed
    }
}
