import Prometheus

/// The process's Prometheus metrics factory, with duration buckets fine enough for the steps.
enum MetricsSetup {
    /// Step durations (`outbound_step_duration_seconds`) from 100 µs to 10 s. swift-prometheus's
    /// default buckets start at 5 ms, and every step of a healthy worker (a Redis round trip, a
    /// parse, a send on a fast network) fell into that first bucket: `histogram_quantile`, as the
    /// shipped dashboard uses it, then read a p50 of 2.5 ms and a p99 of 4.95 ms whatever the step took.
    static let durationBuckets: [Duration] = [
        .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .microseconds(2500),
        .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
        .milliseconds(250), .milliseconds(500), .seconds(1), .milliseconds(2500), .seconds(5), .seconds(10),
    ]

    /// The factory to bootstrap `MetricsSystem` with, its metrics in `registry`.
    static func factory(registry: PrometheusCollectorRegistry) -> PrometheusMetricsFactory {
        var factory = PrometheusMetricsFactory(registry: registry)
        factory.defaultDurationHistogramBuckets = durationBuckets
        return factory
    }
}
