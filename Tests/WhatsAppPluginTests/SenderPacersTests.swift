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

/// A step's cache of pacers drops those `FlowControl` let go (idle) once it has doubled, and a
/// sender whose pacer was let go gets the new one.
struct SenderPacersPruningTests {
    @Test func pacersLetGoLeaveTheStepsCacheAndTheSenderGetsItsNewOne() throws {
        let clock = ManualWallClock()
        let flow = FlowControl(clock: clock, logger: Logger(label: "test"))
        let pacers = SenderPacers()
        let client = try SenderPacersTests().client(throughput: 10)
        let first = pacers.pacer("0", flow, client)
        for sender in 1..<SenderPacers.leastPruneSize - 1 { _ = pacers.pacer("\(sender)", flow, client) }
        #expect(pacers.count == SenderPacers.leastPruneSize - 1)
        clock.advance(by: .seconds(Int64(FlowControl.idlePacerLifetime) + 1))
        // A new sender: every pacer before is idle and let go; the cache reaches its pruning size.
        _ = pacers.pacer("new", flow, client)
        #expect(pacers.count == 1, "only the new sender's pacer is kept")
        #expect(pacers.pacer("0", flow, client) !== first, "the first sender's next message gets a new pacer")
    }
}
