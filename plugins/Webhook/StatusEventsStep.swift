import PipelineKit
import Tracing

/// Step `status_events`: the events of the batch (`delivery.<status>`, `webhook.<field>`), for the sink.
///
/// When tracing is on, a status of a traced send gets a span in that send's trace (`delivery.<status>`,
/// linked to the webhook's own trace), and its event carries it on: one trace from the publish of a
/// message to its delivery status.
struct StatusEventsStep: Step {
    /// The tracer, nil unless one was bootstrapped before the step was built.
    let tracer = MessageTracing().tracer

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard var batch = message.values[WebhookBatchKey.self] else {
            message.values[PreparedEventsKey.self] = []
            return .next
        }
        if let tracer {
            for index in batch.statuses.indices where batch.statuses[index].publish {
                guard let send = batch.statuses[index].sendTrace else { continue }
                batch.statuses[index].eventTrace = Self.traceStatus(batch.statuses[index], of: send, tracer: tracer)
            }
            message.values[WebhookBatchKey.self] = batch
        }
        message.values[PreparedEventsKey.self] = batch.events
        return .next
    }

    /// A span for `status` in the trace of its send (`traceparent`), linked to the webhook's; the headers of its event.
    private static func traceStatus(_ status: WebhookBatch.Status, of traceparent: String, tracer: any Tracer) -> [String: String] {
        let span = tracer.startSpan("delivery.\(status.status)", context: TraceHeaders.context(of: ["traceparent": traceparent], via: tracer), ofKind: .consumer)
        defer { span.end() }
        span.updateAttributes {
            $0["whatsapp.wamid"] = status.wamid
            $0["whatsapp.status"] = status.status
            if let id = status.internalID { $0["outbound.internal_id"] = id }
        }
        if let webhook = ServiceContext.current { span.addLink(SpanLink(context: webhook, attributes: [:])) }
        return TraceHeaders.of(span.context, via: tracer)
    }
}

extension StepPlugin {
    /// The `status_events` step plugin.
    public static let statusEvents = StepPlugin(
        name: "status_events", summary: "turns the batch into delivery.<status> and webhook.<field> events for the events sink",
        settings: SettingsSchema([]), requires: [.webhookBatch], check: eventsSectionNeeded,
        make: { _ in StatusEventsStep() })
}
