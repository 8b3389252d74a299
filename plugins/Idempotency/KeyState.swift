import Foundation
import PipelineKit

/// The JSON value of an idempotency key: `processing` while a worker owns it, `completed` once sent.
public struct KeyState: Decodable, Sendable, Equatable {
    public var status: String
    public var owner: String?
    public var since: String?
    public var wamid: String?
    public var completed_at: String?
    /// While `in_doubt`: the delivery whose send went in doubt.
    public var attempt: Int?
    /// While `processing`, `in_doubt` or `completed` without a wamid, for a send whose trace is
    /// recorded: its W3C `traceparent`, so that a delivery status settling the key continues the
    /// send's trace (no mapping of its wamid is written yet, or ever will be: its answer was lost).
    public var trace: String?

    public static func processing(owner: String, since: Date, trace: String? = nil) -> KeyState {
        KeyState(status: "processing", owner: owner, since: UTCTimestamp.format(since), trace: trace)
    }

    /// `trace`: kept only while the wamid is not known (the status that fills it in continues the trace).
    public static func completed(wamid: String?, at: Date, trace: String? = nil) -> KeyState {
        KeyState(status: "completed", wamid: wamid, completed_at: UTCTimestamp.format(at), trace: wamid == nil ? TraceHeaders.traceparent(trace) : nil)
    }

    public static func inDoubt(owner: String, since: Date, attempt: Int, trace: String? = nil) -> KeyState {
        KeyState(status: "in_doubt", owner: owner, since: UTCTimestamp.format(since), attempt: attempt, trace: trace)
    }

    var isCompleted: Bool { status == "completed" }
    var isInDoubt: Bool { status == "in_doubt" }

    /// When processing started, if readable.
    var sinceDate: Date? { since.flatMap(Self.date) }

    /// A time this worker wrote (with fractional seconds) or any ISO 8601 time.
    static func date(_ text: String) -> Date? {
        (try? Date(text, strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted)))
            ?? (try? Date(text, strategy: .iso8601))
    }

    /// The stored JSON text, members in declaration order (written directly: this runs twice per message).
    public func encoded() -> String {
        var writer = JSONWriter(capacity: 128)
        writer.beginObject()
        writer.member("status", status)
        writer.member("owner", owner)
        writer.member("since", since)
        if isCompleted, wamid == nil {
            // Accepted, its wamid not known yet (the statuses pipeline fills it in): `null`, not absent.
            writer.key("wamid")
            writer.null()
        } else {
            writer.member("wamid", wamid)
        }
        writer.member("completed_at", completed_at)
        if let attempt {
            writer.key("attempt")
            writer.number(Double(attempt))
        }
        writer.member("trace", trace)
        writer.endObject()
        return writer.text
    }

    public static func decode(_ text: String) -> KeyState? {
        try? JSONDecoder().decode(KeyState.self, from: Data(text.utf8))
    }
}
