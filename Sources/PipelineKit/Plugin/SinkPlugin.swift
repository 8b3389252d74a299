import Logging

/// What a sink plugin gets to build the sink.
public struct SinkBuildContext: Sendable {
    public var settings: Settings
    /// The pipeline's `name`, for what the sink reports.
    public var pipelineName: String
    /// Identifies this worker process.
    public var workerID: String
    public var logger: Logger

    public init(settings: Settings, pipelineName: String, workerID: String, logger: Logger) {
        self.settings = settings
        self.pipelineName = pipelineName
        self.workerID = workerID
        self.logger = logger
    }
}

/// Where outcomes go (`events:` in a pipeline): its settings and how to build it. The sink is
/// told every final outcome before the message is settled (`OutcomeSink`).
///
/// ```swift
/// struct LogSink: OutcomeSink {
///     let logger: Logger
///     func record(_ outcome: Outcome) async throws { logger.info("outcome", metadata: ["decision": "\(outcome.decision)"]) }
/// }
///
/// extension SinkPlugin {
///     static let log = SinkPlugin(
///         name: "log", summary: "each outcome as a log line", settings: SettingsSchema(),
///         render: { _, _ in [] },                                   // what `outbound-worker test` compares: no events
///         make: { context in LogSink(logger: context.logger) })
/// }
/// // registered once by the executable: registry.register(SinkPlugin.log)
/// ```
///
/// `record` throwing (the transport refused the event) keeps the message unsettled: the runtime
/// reports the outcome again with backoff, so an outcome is never lost.
public struct SinkPlugin: Sendable {
    public var name: String
    public var summary: String
    public var settings: SettingsSchema
    /// The events an outcome gives, as the sink publishes them (`outbound-worker test` compares them).
    public var render: @Sendable (Outcome, SinkBuildContext) -> [PreparedEvent]
    public var make: @Sendable (SinkBuildContext) async throws -> any OutcomeSink

    public init(name: String, summary: String, settings: SettingsSchema, render: @escaping @Sendable (Outcome, SinkBuildContext) -> [PreparedEvent],
                make: @escaping @Sendable (SinkBuildContext) async throws -> any OutcomeSink) {
        self.name = name
        self.summary = summary
        self.settings = settings
        self.render = render
        self.make = make
    }
}
