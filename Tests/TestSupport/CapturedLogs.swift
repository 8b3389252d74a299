import Logging
import Synchronization

/// Captures log lines so tests can check what was (not) logged.
public final class CapturedLogs: Sendable {
    /// A line: its message and its metadata (the logger's and the line's).
    public struct Entry: Sendable {
        public var message: String
        public var metadata: Logger.Metadata
    }

    private let entries = Mutex<[Entry]>([])
    public func append(_ entry: Entry) { entries.withLock { $0.append(entry) } }
    /// Every line so far.
    public var lines: [Entry] { entries.withLock { $0 } }
    /// Every line as text: its message and its metadata.
    public var all: String { lines.map { "\($0.message) \($0.metadata)" }.joined(separator: "\n") }

    public struct Handler: LogHandler {
        let sink: CapturedLogs
        public var logLevel: Logger.Level = .trace
        public var metadata: Logger.Metadata = [:]
        public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        public func log(event: LogEvent) {
            sink.append(Entry(message: event.message.description, metadata: metadata.merging(event.metadata ?? [:]) { $1 }))
        }
    }

    public init() {}

    public var logger: Logger { Logger(label: "captured") { _ in Handler(sink: self) } }
}
