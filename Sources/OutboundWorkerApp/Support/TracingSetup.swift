import Foundation
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
        if let name = serviceName(for: environment) { configuration.serviceName = name }
        configuration.logs.enabled = false
        configuration.metrics.enabled = false
        configuration.diagnosticLogger = .custom(logger)
        return try OTel.bootstrap(configuration: configuration, environment: tracingVariables(of: environment))
    }

    /// The service name the worker gives its spans: `outbound-worker`, unless the environment names
    /// the service (`OTEL_SERVICE_NAME`, or `service.name` in `OTEL_RESOURCE_ATTRIBUTES`, which
    /// swift-otel reads only when no name was set in code): nil then.
    static func serviceName(for environment: [String: String]) -> String? {
        if environment["OTEL_SERVICE_NAME"]?.isEmpty == false { return nil }
        let attributes = environment["OTEL_RESOURCE_ATTRIBUTES", default: ""].split(separator: ",")
        let named = attributes.contains { $0.split(separator: "=", maxSplits: 1).first?.trimmingCharacters(in: .whitespaces) == "service.name" }
        return named ? nil : "outbound-worker"
    }

    /// The variables swift-otel is given: those of traces, their export and the resource only. Any
    /// other could turn on its metrics or logs (`OTEL_SDK_DISABLED=false` does, for every signal),
    /// a second bootstrap of swift-metrics or swift-log, which ends the process.
    static func tracingVariables(of environment: [String: String]) -> [String: String] {
        environment.filter { name, _ in
            guard name.hasPrefix("OTEL_") else { return false }
            if name.hasPrefix("OTEL_EXPORTER_OTLP_") { return !name.hasPrefix("OTEL_EXPORTER_OTLP_METRICS_") && !name.hasPrefix("OTEL_EXPORTER_OTLP_LOGS_") }
            return name.hasPrefix("OTEL_TRACES_") || name.hasPrefix("OTEL_BSP_")
                || ["OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_PROPAGATORS", "OTEL_LOG_LEVEL"].contains(name)
        }
    }

    /// Log metadata for a traced message: `trace_id`, `span_id` of the span the line is written in.
    static let metadataProvider = OTel.makeLoggingMetadataProvider()
}
