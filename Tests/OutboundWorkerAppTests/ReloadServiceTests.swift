@testable import OutboundWorkerApp
import PipelineKit
import Testing
import TestSupport

/// What a SIGHUP cannot change is said, not passed over: the sink and the health server are built
/// once at start, so a reload that changed `events` logged "pipeline reloaded" and events went on to
/// the old exchange.
@Suite struct ReloadServiceTests {
    private func outboundPipeline(_ environment: [String: String]) throws -> PipelineDefinition {
        let base = ["WHATSAPP_ACCESS_TOKEN": "t", "PIPELINE_ENV": "", "IDEMPOTENCY_TTL_SECONDS": ""]
        let path = TestServices.repository.appendingPathComponent("pipelines/outbound.yaml").path
        return try #require(PipelineLoader(registry: BuiltinPlugins.registry, environment: base.merging(environment) { $1 }).load(path: path).definition)
    }

    @Test func changesARestartAloneAppliesAreNamed() throws {
        let running = try outboundPipeline(["OUTBOUND_EVENTS_EXCHANGE": "events.a"])
        #expect(ReloadService.restartOnlyChanges(from: running, to: try outboundPipeline(["OUTBOUND_EVENTS_EXCHANGE": "events.a"])).isEmpty)
        #expect(ReloadService.restartOnlyChanges(from: running, to: try outboundPipeline(["OUTBOUND_EVENTS_EXCHANGE": "events.b"])) == ["`events`"])
        #expect(ReloadService.restartOnlyChanges(from: running, to: try outboundPipeline(["OUTBOUND_EVENTS_EXCHANGE": "events.b", "OUTBOUND_QUEUE": "other"]))
            == ["`source`", "`events`"])
    }

    /// A reload that changed the source's retry built its executor with it: messages were
    /// dead-lettered after the new `max_attempts` (and waited the old delay queues' backoff) while
    /// the log said the source was unchanged.
    @Test func whatARestartAloneAppliesRunsAsItStarted() throws {
        let running = try outboundPipeline([:])
        var edited = try outboundPipeline(["OUTBOUND_QUEUE": "other"])
        edited.worker.retry.maxAttempts = 2
        edited.worker.concurrency = 4
        edited.steps.removeLast()
        let applied = ReloadService.applicable(edited, started: running)
        #expect(applied.retry == running.retry)
        #expect(applied.worker == running.worker)
        #expect(applied.source == running.source)
        #expect(applied.steps == edited.steps, "the steps' change applies")
        #expect(ReloadService.applicable(try outboundPipeline(["OUTBOUND_QUEUE": "other"]), started: running) == running, "only a restart-only change: nothing to reload")
    }
}
