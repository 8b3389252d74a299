@testable import OutboundWorkerApp
import Prometheus
import Testing

@Suite struct MetricsSetupTests {
    /// A step of 0.3 ms has buckets around it. With swift-prometheus's defaults the first bucket was
    /// 5 ms, every step of a healthy worker fell in it, and the dashboard's quantiles meant nothing.
    @Test func aStepOfAFractionOfAMillisecondIsTold() {
        let registry = PrometheusCollectorRegistry()
        let timer = MetricsSetup.factory(registry: registry).makeTimer(label: "outbound_step_duration_seconds", dimensions: [("step", "idempotency")])
        timer.recordNanoseconds(300_000)
        timer.recordNanoseconds(3_000_000)
        let exposition = registry.emitToString()
        #expect(exposition.contains(#"outbound_step_duration_seconds_bucket{step="idempotency",le="0.00025"} 0"#))
        #expect(exposition.contains(#"outbound_step_duration_seconds_bucket{step="idempotency",le="0.0005"} 1"#))
        #expect(exposition.contains(#"outbound_step_duration_seconds_bucket{step="idempotency",le="0.0025"} 1"#))
        #expect(exposition.contains(#"outbound_step_duration_seconds_bucket{step="idempotency",le="0.005"} 2"#))
    }
}
