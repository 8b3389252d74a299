import Tracing

/// Traces of messages (W3C trace context, through `swift-distributed-tracing`): a span per
/// delivery that continues the trace its source received (`Delivery.traceHeaders`), and under it
/// a span per step; steps and clients add their own under the step's (`ServiceContext.current`).
///
/// Off unless a tracer was bootstrapped (`InstrumentationSystem.bootstrap`) before the worker was
/// built: then `isOn` is false and nothing here runs — no span, no extraction, no task-local.
public struct MessageTracing: Sendable {
    /// The tracer bootstrapped before this was made, nil when tracing is off (read once: the global
    /// is behind a lock, too dear to take for every span).
    public let tracer: (any Tracer)?

    public var isOn: Bool { tracer != nil }

    public init() {
        let tracer = InstrumentationSystem.tracer
        self.tracer = tracer is NoOpTracer ? nil : tracer
    }

    /// The span of one delivery (`process {pipeline}`, a consumer span), continuing the trace the
    /// source received with it; nil when tracing is off.
    func startDelivery(_ delivery: Delivery, pipeline: String) -> (any Span)? {
        guard let tracer else { return nil }
        let parent = TraceHeaders.context(of: delivery.traceHeaders, via: tracer)
        let span = tracer.startSpan("process \(pipeline)", context: parent, ofKind: .consumer)
        guard span.isRecording else { return span }
        span.updateAttributes {
            $0["messaging.operation.type"] = "process"
            $0["outbound.attempt"] = delivery.attemptsMade + 1
            if let lane = delivery.lane { $0["outbound.lane"] = lane.name }
        }
        return span
    }

    /// The trace of a message whose delivery has `span`: what it goes on with is the span's
    /// context when recorded; when not, the headers it came with if usable (they say the same
    /// trace and decision and cost no injection), else the span's context, unsampled (`-00`: a
    /// trace begun here and not sampled stays one trace, unsampled, across its events, retry
    /// copies and attempts).
    /// `received`: the delivery's headers, as `TraceHeaders.usable` keeps them.
    func trace(continuing received: [String: String], in span: any Span) -> MessageTrace {
        let headers = span.isRecording || received.isEmpty ? tracer.map { TraceHeaders.of(span.context, via: $0) } ?? [:] : received
        return MessageTrace(context: span.context, isRecorded: span.isRecording, headers: headers)
    }

    /// Runs a step of a traced message in its own span (named after the step), current for the
    /// step's work: a failure marks it as an error.
    func step<Result>(_ name: String, of message: ServiceContext, _ operation: () async throws -> Result) async throws -> Result {
        guard let tracer else { return try await operation() }
        let span = tracer.startSpan(name, context: message)
        defer { span.end() }
        do {
            return try await ServiceContext.withValue(span.context) { try await operation() }
        } catch {
            span.recordError(error)
            span.setStatus(SpanStatus(code: .error, message: "\(error)"))
            throw error
        }
    }
}

/// A message's trace: the context of its delivery's span, whether that span is recorded, and
/// the trace-context headers its events carry on.
public struct MessageTrace: Sendable {
    public let context: ServiceContext
    /// False for a trace not sampled: it still goes on (its events carry `headers`) but nothing
    /// makes spans of it or keeps it — what a sampled-out message costs stays near nothing.
    public let isRecorded: Bool
    /// `traceparent`/`tracestate` for what the message causes (its events, its copies): its
    /// delivery span's when recorded; else those it arrived with, if usable (`TraceHeaders.usable`),
    /// which say the same trace and decision and cost no injection; else the span's own context,
    /// unsampled (`-00`) — none under a sampler that is always off (swift-otel makes no context then).
    public let headers: [String: String]

    /// The trace id log lines of a message not recorded carry (`trace_id`; a recorded one's lines
    /// get it from the tracer, with the span's id), so that they join the upstream's lines
    /// whatever the sampling.
    /// (Read once, when the trace is made: every log context of the message takes it.)
    public let unrecordedTraceID: String?

    /// The `traceparent` of a recorded trace, for what is kept to continue it later (a send's
    /// statuses continue it from its idempotency key and its wamid mapping); nil when not recorded.
    public var recordedTraceparent: String? { isRecorded ? headers["traceparent"] : nil }

    public init(context: ServiceContext, isRecorded: Bool, headers: [String: String]) {
        self.context = context
        self.isRecorded = isRecorded
        self.headers = headers
        let parent = isRecorded ? nil : TraceHeaders.traceparent(headers["traceparent"])
        unrecordedTraceID = parent.map { String($0.split(separator: "-")[1]) }
    }
}
