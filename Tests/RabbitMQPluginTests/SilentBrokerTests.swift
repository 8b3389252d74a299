@testable import AMQPClient
import Foundation
import Synchronization
import Testing
import TestSupport

/// A broker that stops answering — a network path that drops what it carries, heartbeats off — does
/// not hold the consumer's thread for good.
@Suite struct SilentBrokerTests {
    /// SIGTERM's drain waits for the consumer to report its intake stopped, which waited for the
    /// broker's answer to basic.cancel: forever without heartbeats, two of them with.
    @Test func intakeIsReportedStoppedWhenTheBrokerNeverAnswersTheCancel() async throws {
        let (proxy, url) = try HoldingProxy.toTestBroker()
        defer { proxy.close() }
        let inspector = try QueueInspector()
        let queue = uniqueName("test.silent")
        try await inspector.publish([Array(#"{"internalId":"waiting"}"#.utf8)], to: queue)
        let stopped = Mutex<ContinuousClock.Instant?>(nil)
        let consumer = AMQPConsumer(urls: [try AMQPURL(url)], queue: queue, prefetch: 1, heartbeat: 0, logger: SourceHarness.logger, events: { event in
            if case .intakeStopped = event { stopped.withLock { $0 = $0 ?? .now } }
        })
        consumer.start()
        try await poll("the consumer consuming") { consumer.status.consuming }

        proxy.hold()
        let asked = ContinuousClock.now
        consumer.stopIntake()
        try await poll("intake reported stopped", timeout: AMQPConsumer.answerTimeout + .seconds(10)) { stopped.withLock { $0 } != nil }
        let took = try #require(stopped.withLock { $0 }) - asked
        #expect(proxy.swallowed > 0, "the cancel went to the silent broker")
        #expect(took < AMQPConsumer.answerTimeout + .seconds(5), "intake reported stopped \(took) after stopIntake")
        consumer.stop()
        await inspector.delete([queue])
    }
}
