import Foundation
import Logging
import PipelineKit
import RedisPlugin
import Testing
import TestSupport
@testable import WebhookPlugin

/// `order_statuses` across two POSTs handled at once in one process: the second is checked against
/// what the first published, not beside it.
@Suite struct OrderStatusesTests {
    let clock = ManualWallClock()

    private func context() -> StepContext {
        let logger = Logger(label: "test.order")
        return StepContext(stepName: "order_statuses", logger: logger, workerID: "w", clock: clock, flow: FlowControl(clock: clock, logger: logger))
    }

    private func post(_ wamid: String, _ status: String) throws -> Message {
        let body = #"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"statuses":[{"id":"\#(wamid)","status":"\#(status)","timestamp":"1800000000"}]}}]}]}"#
        var message = Message(body: Array(body.utf8))
        message.values[WebhookBatchKey.self] = WebhookBatch(try JSONValue(parsing: message.body), receivedAt: clock.now())
        return message
    }

    private func published(_ message: Message) -> [String] {
        (message.values[WebhookBatchKey.self]?.statuses ?? []).filter(\.publish).map(\.status)
    }

    /// `read`, then `delivered` in a second POST while the first's event waited for its confirm: the
    /// ledger knew neither, both were let through, and consumers could get `delivered` after `read`.
    @Test func aStatusOfAWamidBeingPublishedIsCheckedOnceThatOneIsRecorded() async throws {
        let step = OrderStatusesStep(ledger: MemoryStore(clock: clock), ttl: .seconds(3600))
        let wamid = uniqueName("wamid")
        var first = try post(wamid, "read")
        _ = try await step.run(&first, context())
        #expect(published(first) == ["read"])

        let second = Task {
            var message = try post(wamid, "delivered")
            _ = try await step.run(&message, context())
            return message
        }
        try await poll("the second POST waiting for the first") { step.inFlight.waiting == 1 }
        await step.settled(first, context())
        #expect(published(try await second.value).isEmpty, "delivered after a read already published is dropped")

        #expect(!step.inFlight.isHeld(wamid), "given back once recorded, and by a POST that publishes nothing")

        // A POST given up (a later step failed, or it goes back) frees its wamid at once.
        var third = try post(wamid + ".2", "sent")
        _ = try await step.run(&third, context())
        #expect(step.inFlight.isHeld(wamid + ".2"))
        await step.undo(third, context())
        #expect(!step.inFlight.isHeld(wamid + ".2"))
    }
}
