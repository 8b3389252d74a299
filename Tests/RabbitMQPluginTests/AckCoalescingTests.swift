@testable import AMQPClient
import Foundation
import Logging
import Testing
import TestSupport

/// Acks collected together go out as few frames as is safe, and never acknowledge a delivery still in flight.
@Suite(.serialized) struct AckCoalescingTests {
    private let start = ContinuousClock.now

    private func coalescer(delivered count: UInt64, _ batching: AckBatching = .none) -> AckCoalescer {
        var coalescer = AckCoalescer(batching)
        for tag in 1...count { coalescer.delivered(tag) }
        return coalescer
    }

    private func at(_ milliseconds: Int) -> ContinuousClock.Instant {
        start + .milliseconds(milliseconds)
    }

    @Test func anUnbrokenRunIsOneFrameWithMultiple() {
        var acks = coalescer(delivered: 5)
        #expect(acks.acknowledge([3, 1, 2], at: at(0)) == [.init(tag: 3, multiple: true)])
        #expect(acks.acknowledge([4, 5], at: at(0)) == [.init(tag: 5, multiple: true)])
    }

    @Test func acksBehindADeliveryInFlightGoOutAloneAndAtOnce() {
        var acks = coalescer(delivered: 5)
        #expect(acks.acknowledge([2, 4], at: at(0)) == [.init(tag: 2, multiple: false), .init(tag: 4, multiple: false)])
        // 1 completes: the run covers 1 and 2 (already settled); 3 is still in flight.
        #expect(acks.acknowledge([1], at: at(0)) == [.init(tag: 1, multiple: true)])
        #expect(acks.acknowledge([3, 5], at: at(0)) == [.init(tag: 5, multiple: true)])
    }

    @Test func nackedDeliveriesDoNotBreakTheRun() {
        var acks = coalescer(delivered: 3)
        acks.settledIndividually(2)
        #expect(acks.acknowledge([1, 3], at: at(0)) == [.init(tag: 3, multiple: true)])
    }

    /// An ack behind a delivery in flight waits for it, and goes in the run's frame once it is settled.
    @Test func anAckBehindADeliveryInFlightWaitsToJoinTheRun() {
        var acks = coalescer(delivered: 5, AckBatching(window: .milliseconds(1), holdLimit: .milliseconds(10), mostHeld: 10))
        #expect(acks.acknowledge([2, 4], at: at(0)) == [])
        #expect(acks.nextRelease == at(10))
        #expect(acks.acknowledge([1], at: at(3)) == [.init(tag: 2, multiple: true)], "4 still waits for 3")
        #expect(acks.nextRelease == at(10))
        #expect(acks.acknowledge([3, 5], at: at(5)) == [.init(tag: 5, multiple: true)])
        #expect(acks.nextRelease == nil)
    }

    @Test func aHeldAckGoesOutAloneOnceItWaitedTheHoldLimit() {
        var acks = coalescer(delivered: 3, AckBatching(window: .milliseconds(1), holdLimit: .milliseconds(10), mostHeld: 10))
        #expect(acks.acknowledge([2], at: at(0)) == [])
        #expect(acks.acknowledge([3], at: at(4)) == [])
        #expect(acks.acknowledge([], at: at(9)) == [])
        #expect(acks.acknowledge([], at: at(10)) == [.init(tag: 2, multiple: false)])
        #expect(acks.nextRelease == at(14))
        #expect(acks.acknowledge([], at: at(14)) == [.init(tag: 3, multiple: false)])
        #expect(acks.nextRelease == nil)
        // 1 settles the rest of the run (2 and 3 already acknowledged alone).
        #expect(acks.acknowledge([1], at: at(20)) == [.init(tag: 1, multiple: true)])
    }

    /// Each held ack keeps its delivery's prefetch slot: beyond `mostHeld`, the longest held goes.
    @Test func noMoreThanMostHeldWaitTheLongestHeldGoesFirst() {
        var acks = coalescer(delivered: 6, AckBatching(window: .milliseconds(1), holdLimit: .seconds(3600), mostHeld: 2))
        #expect(acks.acknowledge([5], at: at(0)) == [])
        #expect(acks.acknowledge([3], at: at(1)) == [])
        #expect(acks.acknowledge([2, 6], at: at(2)) == [.init(tag: 3, multiple: false), .init(tag: 5, multiple: false)])
        #expect(acks.releaseAll() == [.init(tag: 2, multiple: false), .init(tag: 6, multiple: false)], "the connection closing")
    }

    @Test func aNackedDeliveryLetsTheAcksHeldBehindItJoinTheNextRun() {
        var acks = coalescer(delivered: 3, AckBatching(window: .milliseconds(1), holdLimit: .milliseconds(10), mostHeld: 10))
        #expect(acks.acknowledge([2, 3], at: at(0)) == [])
        acks.settledIndividually(1)
        #expect(acks.acknowledge([], at: at(1)) == [.init(tag: 3, multiple: true)])
    }

    /// Random histories of deliveries, acks, nacks and clock steps, as the broker would see them: a
    /// frame only acknowledges deliveries the worker settled and the broker still holds (a tag it no
    /// longer holds closes the channel), and by the close every ack has reached it.
    @Test(arguments: [AckBatching.none, AckBatching(window: .milliseconds(1), holdLimit: .milliseconds(10), mostHeld: 4)])
    func randomHistoriesAcknowledgeOnlySettledDeliveriesAndEveryOneOfThem(_ batching: AckBatching) {
        var random = SeededGenerator(seed: 28)
        for _ in 0..<200 {
            var acks = AckCoalescer(batching)
            var delivered: UInt64 = 0
            var unsettled: Set<UInt64> = []  // delivered, neither acked nor nacked by the worker
            var brokerHolds: Set<UInt64> = []  // delivered, no frame settled it yet
            var clock = 0
            func apply(_ frames: [AckCoalescer.Frame]) {
                for frame in frames {
                    #expect(brokerHolds.contains(frame.tag), "tag \(frame.tag) is not held by the broker")
                    let covered: Set<UInt64> = frame.multiple ? brokerHolds.filter { $0 <= frame.tag } : [frame.tag]
                    #expect(covered.isDisjoint(with: unsettled), "\(frame) acknowledges a delivery in flight")
                    brokerHolds.subtract(covered)
                }
            }
            for _ in 0..<Int.random(in: 1...60, using: &random) {
                clock += Int.random(in: 0...4, using: &random)
                switch Int.random(in: 0..<10, using: &random) {
                case 0..<4:
                    delivered += 1
                    acks.delivered(delivered)
                    unsettled.insert(delivered)
                    brokerHolds.insert(delivered)
                case 4:
                    guard let tag = unsettled.sorted().randomElement(using: &random) else { continue }
                    unsettled.remove(tag)
                    brokerHolds.remove(tag)
                    acks.settledIndividually(tag)
                case 5:
                    apply(acks.releaseAll())  // as before a pause, resume or stopIntake
                default:
                    let tags = unsettled.sorted().filter { _ in Bool.random(using: &random) }
                    unsettled.subtract(tags)
                    apply(acks.acknowledge(tags.shuffled(using: &random), at: at(clock)))
                    #expect(acks.nextRelease.map { $0 > at(clock) } ?? true, "an ack due is still held")
                }
            }
            apply(acks.releaseAll())
            #expect(brokerHolds == unsettled, "every ack reached the broker by the close")
        }
    }

    /// Acks wait only while the prefetch leaves a delivery waiting for every busy task, and at least
    /// eight: with fewer spare, the next delivery would wait for a held ack. Half the spare may be held.
    @Test func acksWaitOnlyWhenThePrefetchLeavesASpareDeliveryForEveryTask() {
        #expect(AckBatching.forConsumer(prefetch: 64, concurrency: 32) == AckBatching(window: .milliseconds(1), holdLimit: .milliseconds(10), mostHeld: 16),
                "the shipped pipeline's")
        #expect(AckBatching.forConsumer(prefetch: 16, concurrency: 8).mostHeld == 4)
        #expect(AckBatching.forConsumer(prefetch: 9, concurrency: 1).window == .milliseconds(1))
        #expect(AckBatching.forConsumer(prefetch: 2, concurrency: 1) == .none, "one spare delivery is not a millisecond's work")
        #expect(AckBatching.forConsumer(prefetch: 1, concurrency: 1) == .none)
        #expect(AckBatching.forConsumer(prefetch: 63, concurrency: 32) == .none)
        #expect(AckBatching.forConsumer(prefetch: 16, concurrency: 32) == .none)
    }

    /// On the real broker: acks of deliveries 2…20 while 1 is still in flight must settle
    /// exactly those; closing the connection then returns only delivery 1 to the queue. Held acks
    /// (an hour's limit) go out at the close.
    @Test(arguments: [AckBatching.none, AckBatching(window: .milliseconds(1), holdLimit: .seconds(3600), mostHeld: 100)])
    func onTheBrokerOnlyTheDeliveryInFlightReturns(_ batching: AckBatching) async throws {
        let inspector = try QueueInspector()
        let queue = uniqueName("acks")
        var (consumer, deliveries, events) = try await consumeTwenty(from: queue, inspector, batching)
        for delivery in deliveries.dropFirst().shuffled() { consumer.ack(delivery) }
        consumer.stop()
        while await events.next() != nil {}
        try await poll("the delivery in flight back in the queue") { try await inspector.depth(queue) == 1 }
        let returned = try await inspector.drain(queue, expecting: 1)
        #expect(returned.map(\.body) == [deliveries[0].body])
        try await inspector.publisher.delete(queue)
    }

    /// Acks held behind delivery 1 reach the broker by their hold limit, with no other command to
    /// wake the consumer's thread; and no more than `mostHeld` wait.
    @Test func onTheBrokerHeldAcksGoOutByTheirLimitAndNoMoreThanMostHeldWait() async throws {
        let inspector = try QueueInspector()
        let queue = uniqueName("acks-held")
        let mostHeld = 5
        var (consumer, deliveries, events) = try await consumeTwenty(from: queue, inspector,
                                                                   AckBatching(window: .milliseconds(1), holdLimit: .seconds(3600), mostHeld: mostHeld))
        for delivery in deliveries.dropFirst() { consumer.ack(delivery) }
        try await poll("delivery 1 and \(mostHeld) held acks left unsettled") { try TestServices.messagesIncludingUnacknowledged()[queue] == 1 + mostHeld }
        consumer.ack(deliveries[0])
        try await poll("all settled once delivery 1 is") { try TestServices.messagesIncludingUnacknowledged()[queue] == 0 }
        consumer.stop()
        while await events.next() != nil {}

        let timed = uniqueName("acks-timed")
        var (timedConsumer, timedDeliveries, timedEvents) = try await consumeTwenty(from: timed, inspector,
                                                                                   AckBatching(window: .milliseconds(1), holdLimit: .milliseconds(50), mostHeld: 100))
        for delivery in timedDeliveries.dropFirst() { timedConsumer.ack(delivery) }
        try await poll("held acks sent by their limit") { try TestServices.messagesIncludingUnacknowledged()[timed] == 1 }
        timedConsumer.stop()
        while await timedEvents.next() != nil {}
        try await inspector.publisher.delete(queue)
        try await inspector.publisher.delete(timed)
    }

    /// A pause's cancel could fail and end the connection: every held ack goes out before it.
    @Test func onTheBrokerHeldAcksGoOutBeforeAPause() async throws {
        let inspector = try QueueInspector()
        let queue = uniqueName("acks-pause")
        var (consumer, deliveries, events) = try await consumeTwenty(from: queue, inspector,
                                                                   AckBatching(window: .milliseconds(1), holdLimit: .seconds(3600), mostHeld: 100))
        for delivery in deliveries.dropFirst() { consumer.ack(delivery) }
        consumer.pause()
        try await poll("the held acks sent before the pause") { try TestServices.messagesIncludingUnacknowledged()[queue] == 1 }
        consumer.stop()
        while await events.next() != nil {}
        try await inspector.publisher.delete(queue)
    }

    /// Publishes 20 messages to `queue` and takes all of them with a consumer batching its acks as `batching`.
    private func consumeTwenty(from queue: String, _ inspector: QueueInspector, _ batching: AckBatching) async throws
        -> (AMQPConsumer, [AMQPDelivery], AsyncStream<AMQPConsumerEvent>.Iterator) {
        try await inspector.publish((0..<20).map { Array(#"{"n":\#($0)}"#.utf8) }, to: queue)
        var logger = Logger(label: "test.acks")
        logger.logLevel = .critical
        let (consumer, events) = AMQPConsumer.streaming(urls: [try AMQPURL(TestServices.rabbitURL)], queue: queue, prefetch: 50, ackBatching: batching, logger: logger)
        consumer.start()
        var deliveries: [AMQPDelivery] = []
        var iterator = events.makeAsyncIterator()
        while deliveries.count < 20, let event = await iterator.next() {
            if case .delivery(let delivery) = event { deliveries.append(delivery) }
        }
        return (consumer, deliveries, iterator)
    }
}
