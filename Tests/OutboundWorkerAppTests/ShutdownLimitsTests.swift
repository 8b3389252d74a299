import Foundation
@testable import OutboundWorkerApp
import PipelineKit
import Testing
import TestSupport

/// The service group's shutdown limits: past the graceful one it cancels the worker, past the
/// cancellation one it crashes the process — mid-send, that leaves a `processing` key and maybe a
/// second copy. Each must leave room for what is still legitimately running then.
@Suite struct ShutdownBoundsTests {
    @Test func aSendInProgressAndTheLastConfirmsFitBeforeTheProcessIsEnded() throws {
        let environment = ["WHATSAPP_ACCESS_TOKEN": "t", "PIPELINE_ENV": "", "IDEMPOTENCY_TTL_SECONDS": ""]
        let path = TestServices.repository.appendingPathComponent("pipelines/outbound.yaml").path
        let definition = try #require(PipelineLoader(registry: BuiltinPlugins.registry, environment: environment).load(path: path).definition)
        let send = try #require(definition.slowestCall).timeout
        let bounds = RunCommand.shutdownBounds(of: definition)
        // A send begun at the drain's end, then its outcome and one more batch waiting 15 s each for the broker's confirm.
        #expect(bounds.graceful >= definition.worker.drainTimeout + send + .seconds(30), "graceful: \(bounds.graceful)")
        // Cancelled at the graceful limit, a send begun just before it runs its own timeout.
        #expect(bounds.cancellation > send, "cancellation \(bounds.cancellation), a send up to \(send)")
    }
}
