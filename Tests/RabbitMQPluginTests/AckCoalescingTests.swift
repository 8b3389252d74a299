@testable import AMQPClient
import Foundation
import Logging
import Testing
import TestSupport

/// Acks collected together go out as few frames as is safe, and never acknowledge a delivery still in flight.
@Suite(.serialized) struct AckCoalescingTests {
    private func coalescer(delivered count: UInt64) -> AckCoalescer {
        var coalescer = AckCoalescer()
        for tag in 1...count { coalescer.delivered(tag) }
        return coalescer
    }

    @Test func anUnbrokenRunIsOneFrameWithMultiple() {
        var acks = coalescer(delivered: 5)
        #expect(acks.acknowledge([3, 1, 2]) == [.init(tag: 3, multiple: true)])
        #expect(acks.acknowledge([4, 5]) == [.init(tag: 5, multiple: true)])
    }

    @Test func acksBehindADeliveryInFlightGoOutAloneAndAtOnce() {
        var acks = coalescer(delivered: 5)
        #expect(acks.acknowledge([2, 4]) == [.init(tag: 2, multiple: false), .init(tag: 4, multiple: false)])
        // 1 completes: the run covers 1 and 2 (already settled); 3 is still in flight.
        #expect(acks.acknowledge([1]) == [.init(tag: 1, multiple: true)])
        #expect(acks.acknowledge([3, 5]) == [.init(tag: 5, multiple: true)])
    }

    @Test func nackedDeliveriesDoNotBreakTheRun() {
        var acks = coalescer(delivered: 3)
        acks.settledIndividually(2)
        #expect(acks.acknowledge([1, 3]) == [.init(tag: 3, multiple: true)])
    }

    /// Acks wait for company only while a delivery waits in the worker for every busy task, and at
    /// least eight: with fewer spare in the prefetch, the next delivery would wait for the held ack.
    @Test func acksWaitForOthersOnlyWhenThePrefetchLeavesASpareDeliveryForEveryTask() {
        #expect(AMQPConsumer.batchWindow(prefetch: 64, concurrency: 32) == .milliseconds(1), "the shipped pipeline's")
        #expect(AMQPConsumer.batchWindow(prefetch: 16, concurrency: 8) == .milliseconds(1))
        #expect(AMQPConsumer.batchWindow(prefetch: 9, concurrency: 1) == .milliseconds(1))
        #expect(AMQPConsumer.batchWindow(prefetch: 2, concurrency: 1) == .zero, "one spare delivery is not a millisecond's work")
        #expect(AMQPConsumer.batchWindow(prefetch: 1, concurrency: 1) == .zero)
        #expect(AMQPConsumer.batchWindow(prefetch: 63, concurrency: 32) == .zero)
        #expect(AMQPConsumer.batchWindow(prefetch: 16, concurrency: 32) == .zero)
    }

    /// On the real broker: acks of deliveries 2…20 while 1 is still in flight must settle
    /// exactly those; closing the connection then returns only delivery 1 to the queue.
    @Test func onTheBrokerOnlyTheDeliveryInFlightReturns() async throws {
        let inspector = try QueueInspector()
        let queue = uniqueName("acks")
        try await inspector.publish((0..<20).map { Array(#"{"n":\#($0)}"#.utf8) }, to: queue)
        var logger = Logger(label: "test.acks")
        logger.logLevel = .critical
        let (consumer, events) = AMQPConsumer.streaming(urls: [try AMQPURL(TestServices.rabbitURL)], queue: queue, prefetch: 50, logger: logger)
        consumer.start()
        var deliveries: [AMQPDelivery] = []
        var iterator = events.makeAsyncIterator()
        while let event = await iterator.next() {
            if case .delivery(let delivery) = event { deliveries.append(delivery) }
            if deliveries.count == 20 { break }
        }
        for delivery in deliveries.dropFirst().shuffled() { consumer.ack(delivery) }
        consumer.stop()
        while await iterator.next() != nil {}
        try await poll("the delivery in flight back in the queue") { try await inspector.depth(queue) == 1 }
        let returned = try await inspector.drain(queue, expecting: 1)
        #expect(returned.map(\.body) == [deliveries[0].body])
        try await inspector.publisher.delete(queue)
    }
}
