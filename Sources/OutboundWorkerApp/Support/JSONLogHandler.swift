import Foundation
import Logging
import PipelineKit
import Synchronization

/// Writes one JSON object per line: `ts`, `level`, `message`, `logger`, then every metadata
/// key at the top level in sorted order (so `internalId` and `step` are fields of their own).
///
/// Lines are written directly rather than through JSONSerialization, whose key sorting
/// (through AnyHashable and locale-aware comparison) cost more than everything else the
/// worker did per message (measured with perf in scripts/bench).
public struct JSONLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private static let output = Mutex(())

    public init(label: String) {
        self.label = label
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var line = "{\"ts\":\""
        line += Self.timestamp()
        line += "\",\"level\":\""
        line += event.level.rawValue
        line += "\",\"message\":"
        Self.appendString(event.message.description, to: &line)
        line += ",\"logger\":"
        Self.appendString(label, to: &line)
        var fields = metadata
        if let extra = event.metadata, !extra.isEmpty { fields.merge(extra) { $1 } }
        for key in fields.keys.sorted() where !["ts", "level", "message", "logger"].contains(key) {
            line += ","
            Self.appendString(key, to: &line)
            line += ":"
            if let value = fields[key] { Self.appendValue(value, to: &line) }
        }
        line += "}\n"
        Self.output.withLock { _ in
            var bytes = line
            bytes.withUTF8 { buffer in
                var offset = 0
                while offset < buffer.count {
                    let written = write(STDOUT_FILENO, buffer.baseAddress.map { $0 + offset }, buffer.count - offset)
                    if written <= 0 { break }
                    offset += written
                }
            }
        }
    }

    private static func appendValue(_ value: Logger.Metadata.Value, to line: inout String) {
        switch value {
        case .string(let text): appendString(text, to: &line)
        case .stringConvertible(let convertible): appendString(convertible.description, to: &line)
        case .array(let items):
            line += "["
            for (index, item) in items.enumerated() {
                if index > 0 { line += "," }
                appendValue(item, to: &line)
            }
            line += "]"
        case .dictionary(let dictionary):
            line += "{"
            for (index, key) in dictionary.keys.sorted().enumerated() {
                if index > 0 { line += "," }
                appendString(key, to: &line)
                line += ":"
                if let item = dictionary[key] { appendValue(item, to: &line) }
            }
            line += "}"
        }
    }

    static func appendString(_ text: String, to line: inout String) {
        JSONStringLiteral.append(text, to: &line)
    }

    /// UTC time with milliseconds: `2026-11-29T10:39:10.255Z`.
    static func timestamp() -> String {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var parts = tm()
        var seconds = now.tv_sec
        gmtime_r(&seconds, &parts)
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        let millis = Int(now.tv_nsec / 1_000_000)
        let milliText = millis < 10 ? "00\(millis)" : millis < 100 ? "0\(millis)" : "\(millis)"
        return "\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).\(milliText)Z"
    }
}

/// Sets up swift-log once, from `LOG_LEVEL` and `LOG_FORMAT`.
public enum LoggingSetup {
    public static func bootstrap(environment: [String: String]) {
        let level = environment["LOG_LEVEL"].flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
        let json = environment["LOG_FORMAT"]?.lowercased() != "text"
        LoggingSystem.bootstrap { label in
            var handler: any LogHandler = json ? JSONLogHandler(label: label) : StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}
