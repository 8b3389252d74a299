@testable import PipelineKit
import Testing

/// The drain's wait for running messages ends at its timeout whatever the scheduling.
@Suite struct ActivityTrackerTests {
    /// With its time already spent (a zero timeout), the timeout could win before the idle wait had
    /// registered; the wait then registered after the timeout had let go of the waiters, and the drain
    /// waited for every running message to end by itself (audit) — the shutdown's cancellation never came.
    @Test func aWaitThatTimesOutReturnsWhateverRunsFirst() async {
        let tracker = ActivityTracker()
        tracker.begin()
        let returned = await withTaskGroup(of: Int?.self) { group in
            group.addTask {
                var returned = 0
                for _ in 0..<2_000 where await !tracker.waitUntilIdle(timeout: .zero) { returned += 1 }
                return returned
            }
            group.addTask {
                // Ends the one running task should a wait hang, so the test reports instead of hanging.
                try? await Task.sleep(for: .seconds(20))
                return nil
            }
            var first = await group.next() ?? nil
            if first == nil {
                tracker.end()
                first = await group.next() ?? nil
            }
            group.cancelAll()
            return first
        }
        #expect(returned == 2_000, "a wait at its timeout hung until the running task ended")
    }
}

/// What `/health` shows of outcomes the sink refused.
@Suite struct UnreportedOutcomesTests {
    /// A hand-back (a webhook's 503) shows until an outcome is recorded again — not only for a
    /// minute, which a probe every few minutes missed at low traffic (review).
    @Test func aHandBackShowsUntilAnOutcomeIsRecorded() {
        let unreported = UnreportedOutcomes()
        #expect(unreported.refused("broker refused"), "the first of an outage")
        unreported.begin()
        unreported.handedBack()
        unreported.end()
        #expect(unreported.current?.count == 0)
        #expect(unreported.current?.reason == "broker refused")
        #expect(!unreported.refused("broker refused"), "the same outage: logged once")
        unreported.recorded()
        #expect(unreported.current == nil, "recorded again: over")
    }
}
