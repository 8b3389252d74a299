import Logging

/// The message and step the current task is working on. Log lines written meanwhile,
/// by the runtime or by any step, carry them as `internalId` and `step` through
/// `metadataProvider`, so handling a message never copies a logger's metadata
/// (a dictionary per message and per step, measured in the micro-benchmarks).
public struct MessageLogContext: Sendable {
    public var internalID: String?
    public var step: String?

    public init(internalID: String?, step: String?) {
        self.internalID = internalID
        self.step = step
    }

    @TaskLocal public static var current: MessageLogContext?

    /// Bootstrap logging with this provider (`LoggingSystem.bootstrap(_:metadataProvider:)`).
    public static let metadataProvider = Logger.MetadataProvider {
        guard let context = current else { return [:] }
        var metadata: Logger.Metadata = [:]
        if let id = context.internalID { metadata["internalId"] = .string(id) }
        if let step = context.step { metadata["step"] = .string(step) }
        return metadata
    }

    /// Runs `operation` with log lines naming `internalID` and `step`.
    static func during<Result>(_ internalID: String?, step: String, _ operation: () async throws -> Result) async rethrows -> Result {
        try await $current.withValue(MessageLogContext(internalID: internalID, step: step), operation: operation)
    }

    /// Runs `operation` with log lines naming `internalID` and `step`.
    static func during<Result>(_ internalID: String?, step: String, _ operation: () throws -> Result) rethrows -> Result {
        try $current.withValue(MessageLogContext(internalID: internalID, step: step), operation: operation)
    }
}
