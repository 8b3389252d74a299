import PipelineKit

/// What the wamid mapping holds for a send (`mark_completed` writes it, the statuses pipeline reads
/// it): the send's internalId and, when the send was traced, its W3C `traceparent`, so a status
/// continues the send's trace. Redis keeps the trace in a field of its own beside the internalId
/// (`WamidBuckets.luaFunctions`: `mapping_put`, `mapping_get`), which a statuses worker that
/// knows no trace does not read; `stored` is the form the scripts are given and give back.
public struct MappedSend: Sendable, Equatable {
    public var internalID: String
    public var traceparent: String?

    public init(internalID: String, traceparent: String? = nil) {
        self.internalID = internalID
        self.traceparent = traceparent
    }

    /// Reads a stored mapping: the internalId, then a space and the traceparent when there is one.
    /// Only a well-formed W3C traceparent after the last space counts as one: an internalId that
    /// holds spaces (no `validate` step checks it) reads back whole.
    public init(stored: String) {
        guard let space = stored.lastIndex(of: " "), case let trace = stored[stored.index(after: space)...], TraceHeaders.isTraceparent(trace) else {
            self.init(internalID: stored)
            return
        }
        self.init(internalID: String(stored[..<space]), traceparent: String(trace))
    }

    /// As stored.
    public var stored: String {
        traceparent.map { "\(internalID) \($0)" } ?? internalID
    }
}
