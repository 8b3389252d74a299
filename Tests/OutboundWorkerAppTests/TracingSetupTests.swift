@testable import OutboundWorkerApp
import Testing

/// Which `OTEL_*` variables turn tracing on, and the name the worker's spans carry.
struct TracingSetupTests {
    @Test func tracingIsOffUnlessAnExporterOrEndpointIsGiven() {
        #expect(!TracingSetup.isRequested(by: [:]))
        #expect(TracingSetup.isRequested(by: ["OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"]))
        #expect(TracingSetup.isRequested(by: ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"]))
        #expect(TracingSetup.isRequested(by: ["OTEL_TRACES_EXPORTER": "otlp"]))
        #expect(!TracingSetup.isRequested(by: ["OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"]))
        #expect(!TracingSetup.isRequested(by: ["OTEL_SDK_DISABLED": "TRUE", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"]))
        #expect(!TracingSetup.isRequested(by: ["OTEL_EXPORTER_OTLP_ENDPOINT": ""]))
    }

    @Test func theServiceIsNamedByTheEnvironmentBeforeTheWorkersDefault() {
        #expect(TracingSetup.serviceName(for: [:]) == "outbound-worker")
        #expect(TracingSetup.serviceName(for: ["OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging"]) == "outbound-worker")
        #expect(TracingSetup.serviceName(for: ["OTEL_SERVICE_NAME": "outbound-eu"]) == nil)
        #expect(TracingSetup.serviceName(for: ["OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=staging, service.name=outbound-eu"]) == nil)
    }
}
