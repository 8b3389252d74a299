@testable import OutboundWorkerApp
import PipelineKit
import Testing

/// `/health` asks every resource at once and waits for each at most its deadline (review): a Redis
/// master that did not answer held `/health` for its reconnect and command timeouts — up to about
/// 20 s with 5 s timeouts — one resource after the other.
@Suite struct ResourceChecksTests {
    /// A resource whose check answers after `delay`.
    final class Slow: Resource {
        let delay: Duration
        let status: HealthStatus
        init(_ delay: Duration, _ status: HealthStatus = .up) {
            self.delay = delay
            self.status = status
        }
        func health() async -> HealthStatus {
            try? await Task.sleep(for: delay)
            return status
        }
        func shutdown() async {}
    }

    @Test func aCheckThatDoesNotAnswerInTimeIsDownAndHoldsNoOther() async {
        let started = ContinuousClock.now
        let results = await ResourceChecks.run([("redis", Slow(.seconds(30))), ("whatsapp", Slow(.milliseconds(10), .down("token"))), ("events", Slow(.seconds(30)))],
                                               deadline: .milliseconds(200))
        #expect(ContinuousClock.now - started < .seconds(10), "not the 60 s of the two silent checks")
        #expect(results.map(\.name) == ["redis", "whatsapp", "events"], "in the order given")
        #expect(results[1].health == .down("token"))
        for silent in [results[0], results[2]] {
            guard case .down(let reason) = silent.health else {
                Issue.record("\(silent.name): \(silent.health)")
                continue
            }
            #expect(reason.hasPrefix("no answer within"), "\(reason)")
        }
    }
}
