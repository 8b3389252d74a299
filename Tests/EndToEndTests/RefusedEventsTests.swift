import AMQPClient
import Foundation
import PipelineKit
import Testing
import TestSupport

/// Outcome events the broker refuses (SPEC 9): the worker keeps each delivery and publishes its
/// event again with backoff; nothing goes round the broker in a loop.
@Suite(.serialized) struct RefusedEventsTests {
    /// A queue bound to the events exchange at its length limit with `reject-publish`: the broker
    /// nacks every event routed to it (other bound queues still get a copy of each attempt).
    private static func refuseEvents(of exchange: String, _ inspector: QueueInspector) async throws -> String {
        let refusing = uniqueName("events.full")
        try await inspector.publisher.declare(AMQPQueueDeclaration(name: refusing, arguments: ["x-max-length": .int(0), "x-overflow": .string("reject-publish")]))
        try await inspector.publisher.bind(AMQPBinding(queue: refusing, exchange: exchange, routingKey: "#"))
        return refusing
    }

    /// Before the fix every refused event released its message, redelivered at broker speed: on a
    /// quorum queue with `delivery_limit: 20`, all 50 were dead-lettered although each was sent.
    @Test func eventsRefusedForEightSecondsDeadLetterNothingAndEachMessageIsReportedOnce() async throws {
        let e2e = try await EndToEndHarness()
        let events = EventsTests.EventQueue()
        try await events.bind(e2e.inspector)
        let refusing = try await Self.refuseEvents(of: events.exchange, e2e.inspector)
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "prefetch: 64", with: "prefetch: 64\n    queue_type: quorum\n    delivery_limit: 20"))
        let worker = try await e2e.startWorker(extra: ["OUTBOUND_EVENTS_EXCHANGE": events.exchange, "WHATSAPP_THROUGHPUT": "1000"])
        try await e2e.inspector.publish((0..<50).map(e2e.textMessage), to: e2e.queue, declare: false)
        try await poll("50 sent") { e2e.requestsByRecipient.count == 50 }
        var health = ""
        try await poll("/health degraded with the reason") {
            health = await worker.text("/health") ?? ""
            return health.contains(#""status":"degraded""#) && health.contains("messages_held")
        }
        // The refusal lasts 8 s (the scenario, not a synchronisation): meanwhile every event attempt leaves a copy in `events.queue`.
        try await Task.sleep(for: .seconds(8))
        let duringRefusal = try await e2e.inspector.depth(events.queue)
        await e2e.inspector.delete([refusing])
        try await poll("every message reported once the broker takes events", timeout: .seconds(60)) {
            try await e2e.inspector.depth(events.queue) >= duringRefusal + 50
        }
        try await poll("/health ok again") { (await worker.text("/health") ?? "").contains(#""status":"ok""#) }
        try await e2e.waitUntilDrained()
        let taken = try await events.take(e2e.inspector, expecting: try await e2e.inspector.depth(events.queue))
        #expect(duringRefusal <= 50 * 6, "a handful of attempts per message while refused, not thousands: \(duringRefusal) for 50")
        #expect(Set(taken.compactMap { $0.body["internalId"]?.stringValue }) == Set((0..<50).map(e2e.id)), "each message reported")
        #expect(taken.allSatisfy { $0.routingKey == "outbound.sent" }, "sent, never a duplicate: the deliveries stayed with the worker")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered for its delivery limit; log \(worker.logPath)")
        #expect(e2e.requestsByRecipient.values.allSatisfy { $0 == 1 }, "none sent twice")
        #expect(health.contains("outcomes not recorded"), "/health says why: \(health)")
        try await worker.stop()
        await e2e.inspector.delete([events.queue])
        await e2e.cleanUp()
    }
}
