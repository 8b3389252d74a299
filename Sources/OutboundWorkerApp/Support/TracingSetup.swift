import Logging
import OTel
import PipelineKit
import ServiceLifecycle

/// Tracing of messages (swift-otel, OTLP): off unless the environment asks for it with the standard
/// `OTEL_*` variables — `OTEL_TRACES_EXPORTER` (not `none`), or an OTLP endpoint
/// (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) — and `OTEL_SDK_DISABLED`
/// is not `true`. The rest (protocol, headers, sampler, batch sizes, service name) is swift-otel's
/// reading of the same variables. Only traces: metrics stay Prometheus's and logs stay on standard
/// output, where each line of a traced message carries `trace_id` and `span_id`.
enum TracingSetup {
    /// Whether `environment` turns tracing on.
    static func isRequested(by environment: [String: String]) -> Bool {
        if environment["OTEL_SDK_DISABLED"]?.lowercased() == "true" { return false }
        if let exporter = environment["OTEL_TRACES_EXPORTER"], !exporter.isEmpty { return exporter.lowercased() != "none" }
        return ["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"].contains { environment[$0]?.isEmpty == false }
    }

    /// Bootstraps the tracer (before anything that traces is built) and returns the service that
    /// exports the spans, to run with the worker; nil when tracing is off.
    static func bootstrap(_ environment: [String: String], logger: Logger) throws -> (any Service)? {
        guard isRequested(by: environment) else { return nil }
        var configuration = OTel.Configuration.default
        configuration.serviceName = "outbound-worker"
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.diagnosticLogger = .custom(logger)
        // Variables of the other signals are not passed on: they could turn on a second metrics or logging backend.
        let tracing = environment.filter { !$0.key.hasPrefix("OTEL_METRICS_") && !$0.key.hasPrefix("OTEL_LOGS_") && !$0.key.hasPrefix("OTEL_METRIC_") }
        return try OTel.bootstrap(configuration: configuration, environment: tracing)
    }

    /// Log metadata for a traced message: `trace_id`, `span_id` of the span the line is written in.
    static let metadataProvider = OTel.makeLoggingMetadataProvider()
}
