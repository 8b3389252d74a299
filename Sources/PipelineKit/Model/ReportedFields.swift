/// What steps found out about a message that its outcome report carries (the recipient as
/// sent, the sender used…), by name: the runtime and the sink know no message schema.
public enum ReportedFieldsKey: MessageValueKey {
    public typealias Value = [String: JSONValue]
}

/// Events steps prepared for the sink to publish instead of the outcome's own (a webhook's statuses).
public enum PreparedEventsKey: MessageValueKey {
    public typealias Value = [PreparedEvent]
}

/// Events a step adds beside the outcome's own, whatever the outcome (`optout.added` when the
/// Cloud API says a recipient stopped marketing messages).
public enum AccompanyingEventsKey: MessageValueKey {
    public typealias Value = [PreparedEvent]
}

/// The `check` of a step whose events are its point (`PreparedEventsKey`): without an `events:`
/// section nothing publishes them, and its messages would be acknowledged — a webhook's POST
/// answered 200 — with their events never published.
public func eventsSectionNeeded(_ step: StepDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
    guard pipeline.events == nil else { return [] }
    return [.error(at: step.location, "step `\(step.name)` prepares events and the pipeline has no `events:` section to publish them: its messages would be acknowledged with their events never published")]
}

/// The `check` of a step that does its work and prepares events beside it: without `events:` the
/// work is done and its events are not published — said, not refused (a pipeline that wants only
/// the work was valid before).
public func eventsSectionExpected(_ step: StepDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
    guard pipeline.events == nil else { return [] }
    return [.warning(at: step.location, "step `\(step.name)` prepares events and the pipeline has no `events:` section: its changes are made, their events never published")]
}

/// One event to publish: its routing key and JSON body.
public struct PreparedEvent: Sendable, Equatable {
    public var routingKey: String
    public var body: JSONValue
    /// The trace the event goes on with (`TraceHeaders`, e.g. a status's, in the trace of its send);
    /// empty: the message's own, when it is traced.
    public var traceHeaders: [String: String]

    public init(routingKey: String, body: JSONValue, traceHeaders: [String: String] = [:]) {
        self.routingKey = routingKey
        self.body = body
        self.traceHeaders = traceHeaders
    }
}

extension Message {
    /// Records a field for the outcome report (`ReportedFieldsKey`).
    public mutating func report(_ name: String, _ value: JSONValue) {
        var fields = values[ReportedFieldsKey.self] ?? [:]
        fields[name] = value
        values[ReportedFieldsKey.self] = fields
    }

    /// The fields steps reported.
    public var reported: [String: JSONValue] { values[ReportedFieldsKey.self] ?? [:] }
}
