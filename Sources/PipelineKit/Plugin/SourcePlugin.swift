import Logging

/// What a source plugin gets to build the source.
public struct SourceBuildContext: Sendable {
    public var settings: Settings
    /// The runtime's settings read from the same `with:` (concurrency, retry, drain…).
    public var worker: WorkerConfiguration
    public var logger: Logger

    public init(settings: Settings, worker: WorkerConfiguration, logger: Logger) {
        self.settings = settings
        self.worker = worker
        self.logger = logger
    }
}

/// A source kind (`source.uses`): its settings and how to build it. The runtime's own
/// settings (`WorkerConfiguration.settings`) are added to every source's schema.
///
/// ```swift
/// enum FileSourceSettings {
///     static let path = Setting.requiredString("path", "the file to read, one message a line")
///     static let schema = SettingsSchema(path)
/// }
///
/// extension SourcePlugin {
///     static let file = SourcePlugin(
///         name: "file", summary: "messages from a file, one a line", settings: FileSourceSettings.schema,
///         make: { context in FileSource(path: context.settings[FileSourceSettings.path], capacity: context.worker.concurrency) })
/// }
/// // registered once by the executable: registry.register(SourcePlugin.file)
/// ```
///
/// `FileSource` conforms to `Source`: it yields `.delivery` events, and carries out each
/// `Settlement` the runtime decides (ack, redeliver after a delay, dead-letter). The runtime does
/// the rest — concurrency, attempts, waits, pauses, the drain at shutdown.
public struct SourcePlugin: Sendable {
    public var name: String
    public var summary: String
    /// The source's own settings followed by the runtime's.
    public var settings: SettingsSchema
    /// Rules across settings, run by `check` after every setting is valid.
    public var check: (@Sendable (PipelineDefinition) -> [Diagnostic])?
    /// For sources that answer their senders: how they take input (used by `outbound-worker test`).
    public var admission: SourceAdmission?
    public var make: @Sendable (SourceBuildContext) async throws -> any Source

    public init(name: String, summary: String, settings: SettingsSchema, check: (@Sendable (PipelineDefinition) -> [Diagnostic])? = nil,
                admission: SourceAdmission? = nil, make: @escaping @Sendable (SourceBuildContext) async throws -> any Source) {
        self.name = name
        self.summary = summary
        self.settings = SettingsSchema(settings.settings + WorkerConfiguration.settings.settings.filter { settings[$0.name] == nil })
        self.check = check
        self.admission = admission
        self.make = make
    }
}
