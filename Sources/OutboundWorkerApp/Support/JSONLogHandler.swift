import Foundation
import Logging
import PipelineKit
import Synchronization

/// Writes one JSON object per line: `ts`, `level`, `message`, `logger`, then every metadata
/// key at the top level in sorted order (so `internalId` and `step` are fields of their own).
///
/// Lines are written with `JSONWriter` rather than JSONSerialization, whose key sorting
/// (through AnyHashable and locale-aware comparison) cost more than everything else the
/// worker did per message (measured with perf in scripts/bench).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    /// Adds the metadata of the current task (the message and step being handled).
    public var metadataProvider: Logger.MetadataProvider?
    private let label: String
    private static let output = Mutex(())

    public init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = JSONWriter(capacity: 320)
        line.beginObject()
        line.key("ts")
        line.string(UTCTimestamp.now())
        line.key("level")
        line.string(event.level.rawValue)
        line.key("message")
        line.string(event.message.description)
        line.key("logger")
        line.string(label)
        var fields = metadata
        if let provided = metadataProvider?.get(), !provided.isEmpty { fields.merge(provided) { $1 } }
        if let extra = event.metadata, !extra.isEmpty { fields.merge(extra) { $1 } }
        for key in fields.keys.sorted() where !Self.reservedKeys.contains(key) {
            line.key(key)
            if let value = fields[key] { Self.append(value, to: &line) }
        }
        line.endObject()
        Self.output.withLock { _ in
            Self.writeLine(line.bytes)
        }
    }

    private static let reservedKeys: Set<String> = ["ts", "level", "message", "logger"]

    private static func append(_ value: Logger.Metadata.Value, to line: inout JSONWriter) {
        switch value {
        case .string(let text): line.string(text)
        case .stringConvertible(let convertible): line.string(convertible.description)
        case .array(let items):
            line.beginArray()
            for item in items { append(item, to: &line) }
            line.endArray()
        case .dictionary(let dictionary):
            line.beginObject()
            for key in dictionary.keys.sorted() {
                line.key(key)
                if let item = dictionary[key] { append(item, to: &line) }
            }
            line.endObject()
        }
    }

    /// Writes `bytes` and a newline to standard output with as few system calls as it takes.
    private static func writeLine(_ bytes: [UInt8]) {
        var bytes = bytes
        bytes.append(UInt8(ascii: "\n"))
        bytes.withUnsafeBufferPointer { buffer in
            var offset = 0
            while offset < buffer.count {
                let written = write(STDOUT_FILENO, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                if written <= 0 { break }
                offset += written
            }
        }
    }
}

/// Sets up swift-log once, from `LOG_LEVEL` and `LOG_FORMAT`; every line goes to standard output.
public enum LoggingSetup {
    static func bootstrap(_ settings: ProcessSettings.Logging, traced: Bool = false) {
        let provider = traced ? Logger.MetadataProvider.multiplex([MessageLogContext.metadataProvider, TracingSetup.metadataProvider]) : MessageLogContext.metadataProvider
        LoggingSystem.bootstrap({ label, provider in
            var handler: any LogHandler = settings.json
                ? JSONLogHandler(label: label, metadataProvider: provider)
                : StreamLogHandler.standardOutput(label: label, metadataProvider: provider)
            handler.logLevel = settings.level
            return handler
        }, metadataProvider: provider)
    }
}
