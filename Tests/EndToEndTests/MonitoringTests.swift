import Foundation
import PipelineKit
import Testing
import TestSupport

/// The alert rules and the dashboard under `ops/` name series the worker really exports:
/// checked against a `/metrics` scrape of the built worker after a token failure, a dead
/// letter and a Redis outage.
@Suite(.serialized) struct MonitoringTests {
    @Test func opsRulesAndDashboardNameSeriesTheWorkerExports() async throws {
        let e2e = try await EndToEndHarness()
        let redis = try ScratchRedis()
        try await redis.start()
        e2e.redisPort = redis.port
        // The first request meets an expired token: consumption pauses (1 s in the test variant); the second, the throughput limit.
        e2e.server.answer { number, _ in
            switch number {
            case 1: .error(status: 401, code: 190, message: "Error validating access token: Session has expired")
            case 2: .error(status: 400, code: 130429, message: "(#130429) Rate limit hit")
            default: .success
            }
        }
        let worker = try await e2e.startWorker()
        try await e2e.publish([e2e.textMessage(1), Array("not json".utf8)])
        try await poll("sent after the pause") { e2e.server.sentByRecipient[e2e.recipient(1)] == 1 }
        try await poll("the invalid one dead-lettered") { try await e2e.inspector.depth("\(e2e.queue).dead") == 1 }
        try await redis.stop()
        try await e2e.publish([e2e.textMessage(2)])
        try await poll("sent without Redis (fail_open)") { e2e.server.sentByRecipient[e2e.recipient(2)] == 1 }
        let scrape = try #require(await worker.text("/metrics"))
        try await worker.stop()
        await e2e.cleanUp()

        let exported = Self.families(in: scrape)
        func exports(_ family: String, _ label: String) -> Bool { exported[family]?.contains { $0.contains(label) } == true }
        #expect(exports("outbound_consumption_paused", #"reason="token_rejected""#), "the pause is labelled by its cause")
        #expect(exports("outbound_dispatch_total", #"code="190""#))
        #expect(exports("outbound_sends_total", #"sender="1055""#))
        #expect(exports("outbound_queue_messages", #"queue="\#(e2e.queue).dead""#))

        let ops = TestServices.repository.appendingPathComponent("ops")
        let rules = try String(contentsOf: ops.appendingPathComponent("prometheus/outbound-worker.rules.yml"), encoding: .utf8)
        let ruleTests = try String(contentsOf: ops.appendingPathComponent("prometheus/outbound-worker.test.yml"), encoding: .utf8)
        let dashboard = try String(contentsOf: ops.appendingPathComponent("grafana/outbound-worker.json"), encoding: .utf8)
        let named = Self.metricNames(in: rules) + Self.metricNames(in: dashboard)
        #expect(named.count > 15)
        for name in Set(named) {
            #expect(Self.family(of: name, in: exported) != nil, "`\(name)` (named under ops/) is not exported by the worker")
        }
        // The series the alert tests feed in have the labels of the real ones (instance and job come from the scrape).
        for series in Self.inputSeries(in: ruleTests) {
            guard let samples = Self.family(of: series.name, in: exported) else {
                Issue.record("the rule tests feed `\(series.name)`, which the worker does not export")
                continue
            }
            let keys = Set(series.labels.filter { $0 != "instance" && $0 != "job" })
            #expect(samples.contains { Self.labelKeys(of: $0) == keys }, "`\(series.name)` with labels \(keys.sorted()) matches no exported series: \(samples.prefix(3))")
        }
    }

    /// Sample lines by metric family (`# TYPE` names), as scraped.
    static func families(in scrape: String) -> [String: [String]] {
        var families: [String: [String]] = [:]
        let lines = scrape.split(separator: "\n").map(String.init)
        for line in lines where line.hasPrefix("# TYPE ") {
            families[String(line.dropFirst(7).split(separator: " ")[0])] = []
        }
        for line in lines where !line.hasPrefix("#") {
            let name = String(line.prefix { $0 != "{" && $0 != " " })
            if let family = family(named: name, among: families.keys) { families[family, default: []].append(line) }
        }
        return families
    }

    /// A histogram's `_bucket`, `_sum` and `_count` belong to the histogram.
    static func family(named name: String, among families: Dictionary<String, [String]>.Keys) -> String? {
        if families.contains(name) { return name }
        for suffix in ["_bucket", "_sum", "_count"] where name.hasSuffix(suffix) {
            let base = String(name.dropLast(suffix.count))
            if families.contains(base) { return base }
        }
        return nil
    }

    static func family(of name: String, in families: [String: [String]]) -> [String]? {
        family(named: name, among: families.keys).flatMap { families[$0] }
    }

    static func metricNames(in text: String) -> [String] {
        text.matches(of: /outbound_[a-z0-9_]+/).map { String($0.output) }
    }

    /// `- series: 'name{a="1",b="2"}'` lines of a promtool test file.
    static func inputSeries(in text: String) -> [(name: String, labels: [String])] {
        text.matches(of: /series: '([a-z0-9_]+)\{([^}]*)\}'/).map { match in
            (String(match.output.1), match.output.2.split(separator: ",").map { String($0.split(separator: "=")[0]) })
        }
    }

    /// `/health` asks its resources at once, each for at most 2 s (`ResourceChecks`): a Redis that
    /// takes connections and never answers, with a command timeout of 10 s, is down within the
    /// deadline instead of holding the answer for its timeout.
    @Test func aSilentRedisIsDownOnHealthWithinTheChecksDeadline() async throws {
        let e2e = try await EndToEndHarness()
        let silent = try SilentListener()
        e2e.redisPort = silent.port
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "resources:\n", with: "resources:\n  redis:\n    with: { command_timeout: 10s }\n"))
        let worker = try await e2e.startWorker()
        let asked = ContinuousClock.now
        let health = try await worker.get("/health", waitingUpTo: .seconds(15))
        let took = ContinuousClock.now - asked
        #expect(took < .seconds(5), "answered by the checks' deadline, not after the 10 s command timeout: \(took)")
        #expect(health.body?["checks"]?["redis"]?["error"]?.stringValue == "no answer within 2.0 seconds", "\(String(describing: health.body))")
        #expect(health.body?["status"]?.stringValue == "degraded")
        try await worker.stop()
        await e2e.cleanUp()
    }

    static func labelKeys(of sample: String) -> Set<String> {
        guard let open = sample.firstIndex(of: "{"), let close = sample.lastIndex(of: "}") else { return [] }
        return Set(sample[sample.index(after: open)..<close].matches(of: /([a-z_]+)="/).map { String($0.output.1) })
    }
}
