import AMQPClient
import EventsPlugin
import Logging
import PipelineKit
import Testing
import TestSupport

/// The events of one message reach the exchange in the order its steps prepared them: a wamid's
/// `sent` before its `delivered` (SPEC 10), however many a webhook's POST carries.
@Suite struct EventsOrderTests {
    @Test func aMessagesEventsArePublishedInTheirOrder() async throws {
        let exchange = uniqueName("test.events-order")
        let queue = uniqueName("test.events-order")
        let inspector = try QueueInspector()
        let plugin = SinkPlugin.rabbitMQEvents
        let sink = try await plugin.make(SinkBuildContext(settings: try settings("url: \"\(TestServices.rabbitURL)\"\nexchange: \(exchange)\n", schema: plugin.settings),
                                                          pipelineName: "statuses", workerID: "test", logger: Logger(label: "test.events-order")))
        try await sink.start()
        try await inspector.publisher.declare(AMQPQueueDeclaration(name: queue))
        try await inspector.publisher.bind(AMQPBinding(queue: queue, exchange: exchange, routingKey: "#"))
        let count = 300
        var message = Message(body: Array("{}".utf8), attempt: 1)
        message.values[PreparedEventsKey.self] = (0..<count).map { PreparedEvent(routingKey: "delivery.sent", body: .object(["order": .string(String($0))])) }
        try await sink.record(Outcome(decision: .ack(.completed), message: message, sent: false))
        let published = try await inspector.drain(queue, expecting: count)
        await sink.shutdown()
        await inspector.delete([queue])
        let order = published.compactMap { (try? JSONValue(parsing: $0.body))?["order"]?.stringValue.flatMap(Int.init) }
        #expect(order == Array(0..<count), "out of order from \(order.indices.first { order[$0] != $0 } ?? -1)")
    }
}
