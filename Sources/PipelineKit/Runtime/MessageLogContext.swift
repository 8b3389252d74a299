import Logging

/// The message and step the current task is working on. Log lines written meanwhile,
/// by the runtime or by any step, carry them as `internalId` and `step` through
/// `metadataProvider`, so handling a message never copies a logger's metadata
/// (a dictionary per message and per step, measured in the micro-benchmarks) — and, for a
/// message whose trace is not recorded, its `trace_id` (a recorded one's lines get it from the
/// tracer, with the span's id).
public struct MessageLogContext: Sendable {
    public var internalID: String?
    public var step: String?
    /// The trace of a message not recorded (`MessageTrace.unrecordedTraceID`).
    public var traceID: String?

    public init(internalID: String?, step: String?, traceID: String? = nil) {
        self.internalID = internalID
        self.step = step
        self.traceID = traceID
    }

    @TaskLocal public static var current: MessageLogContext?

    /// Bootstrap logging with this provider (`LoggingSystem.bootstrap(_:metadataProvider:)`).
    public static let metadataProvider = Logger.MetadataProvider {
        guard let context = current else { return [:] }
        var metadata: Logger.Metadata = [:]
        if let id = context.internalID { metadata["internalId"] = .string(id) }
        if let step = context.step { metadata["step"] = .string(step) }
        if let traceID = context.traceID { metadata["trace_id"] = .string(traceID) }
        return metadata
    }

    /// Runs `operation` with log lines naming `message` (its `internalID` and `traceID`) and `step`.
    static func during<Result>(_ message: MessageLogContext, step: String, _ operation: () async throws -> Result) async rethrows -> Result {
        try await $current.withValue(message.at(step), operation: operation)
    }

    /// Runs `operation` with log lines naming `message` (its `internalID` and `traceID`) and `step`.
    static func during<Result>(_ message: MessageLogContext, step: String, _ operation: () throws -> Result) rethrows -> Result {
        try $current.withValue(message.at(step), operation: operation)
    }

    private func at(_ step: String) -> MessageLogContext {
        MessageLogContext(internalID: internalID, step: step, traceID: traceID)
    }
}
