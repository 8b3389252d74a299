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
}
