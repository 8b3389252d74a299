import Logging

/// Receives each message from a source and decides what becomes of it.
public protocol MessageHandler: Sendable {
    func handle(_ message: Message) async -> Decision
}

/// What a source reports for `/health` and `/ready`.
public struct SourceStatus: Sendable, Equatable {
    /// Connected to its broker.
    public var connected: Bool
    /// Receiving messages now.
    public var consuming: Bool
    /// Why consumption is paused (e.g. the sender's token expired), if it is.
    public var pausedReason: String?
    /// The last connection error, if not connected.
    public var error: String?

    public init(connected: Bool, consuming: Bool, pausedReason: String? = nil, error: String? = nil) {
        self.connected = connected
        self.consuming = consuming
        self.pausedReason = pausedReason
        self.error = error
    }
}

/// Where messages come from (a queue); turns decisions into broker actions.
public protocol Source: Sendable {
    /// Consumes until `beginShutdown` (then drains in-flight messages) or cancellation,
    /// handing every message to `handler` with at most the configured number in flight.
    /// `handler` is asked again for each message, so a reload takes effect for new messages.
    func run(handler: @escaping @Sendable () -> any MessageHandler) async throws
    /// Stops taking messages; `run` returns once in-flight messages finished or the drain timeout passed.
    func beginShutdown()
    /// Connection and consumption state.
    func status() async -> SourceStatus
}

/// What a source plugin gets to build the source.
public struct SourceBuildContext: Sendable {
    public var settings: Settings
    public var retry: RetryPolicy
    public var logger: Logger

    public init(settings: Settings, retry: RetryPolicy, logger: Logger) {
        self.settings = settings
        self.retry = retry
        self.logger = logger
    }
}

/// A source kind (`source.uses`): its settings and how to build it.
public struct SourcePlugin: Sendable {
    public var name: String
    public var summary: String
    public var settings: SettingsSchema
    public var make: @Sendable (SourceBuildContext) async throws -> any Source

    public init(name: String, summary: String, settings: SettingsSchema, make: @escaping @Sendable (SourceBuildContext) async throws -> any Source) {
        self.name = name
        self.summary = summary
        self.settings = settings
        self.make = make
    }
}
