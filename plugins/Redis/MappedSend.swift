/// What the wamid mapping holds for a send (`mark_completed` writes it, the statuses pipeline reads
/// it): the send's internalId and, when the send was traced, its W3C `traceparent`, so a status
/// continues the send's trace.
public struct MappedSend: Sendable, Equatable {
    public var internalID: String
    public var traceparent: String?

    public init(internalID: String, traceparent: String? = nil) {
        self.internalID = internalID
        self.traceparent = traceparent
    }

    /// Reads a stored mapping: the internalId, then a space and the traceparent when there is one
    /// (an internalId has no space: SPEC 3; a mapping written without a trace is the internalId alone).
    public init(stored: String) {
        guard let space = stored.firstIndex(of: " ") else {
            self.init(internalID: stored)
            return
        }
        self.init(internalID: String(stored[..<space]), traceparent: String(stored[stored.index(after: space)...]))
    }

    /// As stored.
    public var stored: String {
        traceparent.map { "\(internalID) \($0)" } ?? internalID
    }
}
