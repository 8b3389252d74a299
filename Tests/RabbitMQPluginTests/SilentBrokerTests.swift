@testable import AMQPClient
import Foundation
import Synchronization
import Testing
import TestSupport

/// A broker that stops answering — a network path that drops what it carries, heartbeats off — does
/// not hold the consumer's thread: SIGTERM's drain waits for the consumer to report its intake stopped.
@Suite struct SilentBrokerTests {
    /// What a consumer reported, and when.
    private final class Reports: Sendable {
        private let events = Mutex<[(event: String, at: ContinuousClock.Instant)]>([])

        func record(_ event: AMQPConsumerEvent) {
            let name = switch event {
            case .delivery: "delivery"
            case .connected: "connected"
            case .disconnected: "disconnected"
            case .intakeStopped: "intakeStopped"
            }
            events.withLock { $0.append((name, .now)) }
        }

        /// When `event` was first reported after `since`.
        func first(_ event: String, after since: ContinuousClock.Instant) -> ContinuousClock.Instant? {
            events.withLock { $0.first { $0.event == event && $0.at >= since }?.at }
        }
    }

    /// Runs `body` with a consumer (heartbeats off) on a fresh queue holding one message, through a
    /// relay to the test broker that can go silent.
    private func withConsumer(answerTimeout: Duration = .seconds(90),
                              _ body: (AMQPConsumer, HoldingProxy, Reports) async throws -> Void) async throws {
        let (proxy, url) = try HoldingProxy.toTestBroker()
        let inspector = try QueueInspector()
        let queue = uniqueName("test.silent")
        try await inspector.publish([Array(#"{"internalId":"waiting"}"#.utf8)], to: queue)
        let reports = Reports()
        let consumer = AMQPConsumer(urls: [try AMQPURL(url)], queue: queue, prefetch: 1, heartbeat: 0, answerTimeout: answerTimeout,
                                    logger: SourceHarness.logger, events: reports.record)
        consumer.start()
        do {
            try await poll("the consumer consuming") { consumer.status.consuming }
            try await body(consumer, proxy, reports)
        } catch {
            consumer.stop()
            proxy.close()
            await inspector.delete([queue])
            throw error
        }
        consumer.stop()
        proxy.close()
        await inspector.delete([queue])
    }

    /// The cancel waited for the broker's cancel-ok: for good without heartbeats, two of them with.
    @Test func intakeIsReportedStoppedAtOnceWhenTheBrokerNoLongerAnswers() async throws {
        try await withConsumer { consumer, proxy, reports in
            proxy.hold()
            let asked = ContinuousClock.now
            consumer.stopIntake()
            try await poll("intake reported stopped", timeout: .seconds(20)) { reports.first("intakeStopped", after: asked) != nil }
            let took = try #require(reports.first("intakeStopped", after: asked)) - asked
            #expect(proxy.swallowed > 0, "the cancel went to the silent broker")
            #expect(took < .seconds(2), "intake reported stopped \(took) after stopIntake")
            #expect(consumer.status.connected, "the connection stays for the acks of the deliveries in flight")
        }
    }

    /// A basic.consume (a resume after a pause, or a connection's first) waited for good without heartbeats,
    /// and meanwhile no command was carried out — a stopIntake neither.
    @Test func aConsumeTheBrokerNeverAnswersEndsTheConnectionAfterTheAnswerTimeout() async throws {
        try await withConsumer(answerTimeout: .seconds(1)) { consumer, proxy, reports in
            consumer.pause()
            try await poll("the consumer paused") { !consumer.status.consuming }
            proxy.hold()
            let asked = ContinuousClock.now
            consumer.resume()
            try await poll("the connection given up", timeout: .seconds(20)) { reports.first("disconnected", after: asked) != nil }
            let took = try #require(reports.first("disconnected", after: asked)) - asked
            #expect(took < .seconds(6), "the connection given up \(took) after the resume")
            consumer.stopIntake()
            try await poll("intake reported stopped", timeout: .seconds(10)) { reports.first("intakeStopped", after: asked) != nil }
        }
    }
}
