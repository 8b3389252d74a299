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
        let parent = delivery.traceHeaders.isEmpty ? ServiceContext.topLevel : TraceHeaders.context(of: delivery.traceHeaders, via: tracer)
        let span = tracer.startSpan("process \(pipeline)", context: parent, ofKind: .consumer)
        guard span.isRecording else { return span }
        span.updateAttributes {
            $0["messaging.operation.type"] = "process"
            $0["outbound.attempt"] = delivery.attemptsMade + 1
            if let lane = delivery.lane { $0["outbound.lane"] = lane.name }
        }
        return span
    }

    /// The `traceparent`/`tracestate` of `context` (none when tracing is off).
    func headers(of context: ServiceContext) -> [String: String] {
        tracer.map { TraceHeaders.of(context, via: $0) } ?? [:]
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
    public var context: ServiceContext
    /// False for a trace not sampled: it still goes on (its events carry `headers`) but nothing
    /// makes spans of it or keeps it — what a sampled-out message costs stays near nothing.
    public var isRecorded: Bool
    /// `traceparent`/`tracestate` for what the message causes (its events): its delivery span's
    /// when recorded; else those it arrived with, if well-formed (none for a trace that began
    /// here, unrecorded and unseen), which say the same trace and decision and cost no injection.
    public var headers: [String: String]

    public init(context: ServiceContext, isRecorded: Bool, headers: [String: String]) {
        self.context = context
        self.isRecorded = isRecorded
        self.headers = headers
    }
}

/// W3C trace-context headers (`traceparent`, `tracestate`) as strings, the way sources and sinks
/// carry them (AMQP headers, HTTP headers): what an `Instrument` reads from and writes into.
public enum TraceHeaders {
    /// The headers of `context` (empty when it has no span), as `instrument` (the tracer) writes them.
    public static func of(_ context: ServiceContext, via instrument: any Instrument) -> [String: String] {
        var headers: [String: String] = [:]
        instrument.inject(context, into: &headers, using: Injector())
        return headers
    }

    /// `headers` when their `traceparent` is well-formed (`vv-<32 hex>-<16 hex>-ff`, lowercase),
    /// else none: what a sampled-out message's events carry on, as received or not at all (W3C: a
    /// malformed parent starts a new trace, and `tracestate` goes only with its `traceparent`).
    public static func wellFormed(_ headers: [String: String]) -> [String: String] {
        headers["traceparent"].map { isTraceparent($0[...]) } == true ? headers : [:]
    }

    /// Whether `text` is a well-formed W3C `traceparent`: `vv-<32 hex>-<16 hex>-ff`, lowercase.
    public static func isTraceparent(_ text: Substring) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        let lowerHex = { (part: Substring) in part.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) } }
        return parts.map(\.count) == [2, 32, 16, 2] && parts.allSatisfy(lowerHex)
    }

    /// The context `headers` carry (as received: a parent for new spans), as `instrument` (the tracer) reads them.
    public static func context(of headers: [String: String], via instrument: any Instrument) -> ServiceContext {
        var context = ServiceContext.topLevel
        instrument.extract(headers, into: &context, using: Extractor())
        return context
    }

    struct Extractor: Instrumentation.Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    struct Injector: Instrumentation.Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    }
}
