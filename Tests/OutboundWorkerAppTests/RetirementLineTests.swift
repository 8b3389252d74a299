@testable import OutboundWorkerApp
import Synchronization
import Testing
import TestSupport

/// Pipelines a reload replaced are retired in order, once idle — also when the task that retires
/// one is cancelled (a send still running at the end of a shutdown uses their resources).
@Suite struct RetirementLineTests {
    final class Pipeline: Sendable {
        let busy = Atomic<Bool>(true)
        var isIdle: Bool { !busy.load(ordering: .acquiring) }
    }

    final class Log: Sendable {
        private let entries = Mutex<[String]>([])
        func add(_ entry: String) { entries.withLock { $0.append(entry) } }
        var all: [String] { entries.withLock { $0 } }
    }

    @Test func aPipelineIsRetiredOnlyOnceIdleAndAfterEveryOneReplacedBeforeIt() async throws {
        let line = RetirementLine(pollInterval: .milliseconds(5))
        let (first, second) = (Pipeline(), Pipeline())
        let firstPlace = line.enter(isIdle: { first.isIdle })
        let secondPlace = line.enter(isIdle: { second.isIdle })
        let log = Log()
        async let retiredSecond: Void = line.retire(secondPlace) { log.add("second") }
        second.busy.store(false, ordering: .releasing)
        async let retiredFirst: Void = line.retire(firstPlace) { log.add("first") }
        // The second is idle, but the first — whose resources it may have reused — is not.
        try await Task.sleep(for: .milliseconds(100))
        #expect(log.all.isEmpty, "nothing retired while the first pipeline has a message in flight")
        first.busy.store(false, ordering: .releasing)
        _ = await (retiredFirst, retiredSecond)
        #expect(log.all == ["first", "second"])
    }

    @Test func aCancelledRetirementStillWaitsForItsLastMessage() async throws {
        let line = RetirementLine(pollInterval: .milliseconds(5))
        let pipeline = Pipeline()
        let place = line.enter(isIdle: { pipeline.isIdle })
        let log = Log()
        let retirement = Task { await line.retire(place) { log.add("shut down") } }
        retirement.cancel()
        try await Task.sleep(for: .milliseconds(100))
        #expect(log.all.isEmpty, "its resources stay while a message (a send finishing) uses them")
        pipeline.busy.store(false, ordering: .releasing)
        await retirement.value
        #expect(log.all == ["shut down"])
    }
}
