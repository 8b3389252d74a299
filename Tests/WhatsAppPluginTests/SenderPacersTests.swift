import Logging
import PipelineKit
import Testing
import TestSupport
@testable import WhatsAppPlugin

/// A `dispatch` step configures its senders' pacers once, and again when another step (the pipeline
/// before a reload, finishing its last messages) configured them since.
struct SenderPacersTests {
    func client(throughput: Int) throws -> StandInCloudAPI {
        StandInCloudAPI(configuration: CloudAPIConfiguration(settings: try settings("access_token: t\nthroughput: \(throughput)\n", schema: CloudAPISettings.schema)),
                        slotStore: nil, clock: ManualWallClock(), log: StandInLog())
    }

    @Test func aStepsPacerKeepsItsLimitWhenTheStepBeforeAReloadConfiguredItMeanwhile() throws {
        let flow = FlowControl(clock: ManualWallClock(), logger: Logger(label: "test"))
        let (before, after) = (SenderPacers(), SenderPacers())
        let (old, new) = (try client(throughput: 10), try client(throughput: 20))
        _ = before.pacer("100", flow, old)
        #expect(after.pacer("100", flow, new).rate == 20 * SendPacer.headroom, "the reloaded limit")
        // A message of the old pipeline reaches its dispatch step: the pacer is set back to its limit ...
        #expect(before.pacer("100", flow, old).rate == 10 * SendPacer.headroom)
        // ... and the new step's next message sets it to the reloaded one again.
        #expect(after.pacer("100", flow, new).rate == 20 * SendPacer.headroom, "not the old limit the other step left")
        #expect(after.pacer("100", flow, new) === before.pacer("100", flow, old), "one pacer per sender in a worker")
    }
}
