import Foundation
import PipelineKit
import Testing

/// Holds grow per outage, not per failure, and one probe tries when a hold ends.
@Suite struct EscalatingHoldsTests {
    /// A hold's count can come from a store (another worker's, or anything written there): a count
    /// of 2^62 made `length` loop that many times under the holds' lock (the worker hung), and
    /// `Int.min` or a count past the end of 64 bits trapped (a range, then `count + 1`).
    @Test(.timeLimit(.minutes(1))) func aCountFromAStoreCostsAFewStepsAndNeverOverflows() {
        let policy = EscalationPolicy(first: .seconds(1), factor: 4, cap: .seconds(256))
        #expect(policy.length(1 << 62) == .seconds(256))
        #expect(policy.length(.min) == .seconds(1))
        #expect(policy.length(2) == .seconds(16))
        #expect(EscalationPolicy(first: .zero, factor: 2, cap: .seconds(5)).length(1 << 62) == .zero, "a length that cannot grow stops at once")
        #expect(EscalationPolicy(first: .seconds(1), factor: 1, cap: .seconds(5)).length(1 << 62) == .seconds(1))
        #expect(SharedHold(key: "k", kind: .pairHold, count: .max, remaining: .seconds(1)).count == SharedHold.countRange.upperBound)
        #expect(SharedHold(key: "k", kind: .pairHold, count: .min, remaining: .seconds(1)).count == 0)
    }

    private let policy = EscalationPolicy(first: .seconds(5), factor: 2, cap: .seconds(300))

    @Test func aBurstOfFailuresInOneOutageHoldsOnceNotOncePerFailure() {
        let clock = ManualWallClock()
        let holds = EscalatingHolds(clock: clock)
        var lengths: [Duration] = []
        for _ in 0..<100 {
            lengths.append(holds.hold("token:default", policy: policy, kind: .paused, reason: "190").length)
        }
        #expect(lengths.allSatisfy { $0 == .seconds(5) }, "100 concurrent failures are one outage: \(Set(lengths))")
        #expect(holds.held("token:default", at: clock.now())?.count == 1)
    }

    /// The wall clock stepped back an hour during a 5 s pause (NTP, a VM resumed): the pause, an
    /// instant on that clock, lasted an hour and 5 s — consumption stopped that long (audit).
    @Test func aWallClockSteppedBackDoesNotLengthenAHold() {
        let clock = ManualWallClock()
        let holds = EscalatingHolds(clock: clock)
        holds.hold("token:a", policy: policy, kind: .paused, reason: "190", pausesSource: "token_rejected")
        holds.hold("token:b", policy: policy, kind: .paused, reason: "190", pausesSource: "token_rejected")
        clock.advance(by: .seconds(-3600))
        let held = holds.held("token:a", at: clock.now())
        #expect(held.map { $0.until.timeIntervalSince(clock.now()) } == 5, "held \(held.map { $0.until.timeIntervalSince(clock.now()) } ?? 0) s more")
        #expect(holds.pausingSource.map { $0.until.timeIntervalSince(clock.now()) } == [5, 5], "what stops consumption, as the source's follower reads it")
        clock.advance(by: .seconds(5))
        #expect(holds.held("token:a", at: clock.now()) == nil, "its probe goes when the 5 s are over")
    }

    /// A caller's `now` read before a wait (a Redis refresh, a starved thread) is older than a hold
    /// made meanwhile: taken for a clock stepped back, it shortened that hold for everyone (review).
    @Test func aCallersEarlierNowDoesNotShortenAHold() {
        let clock = ManualWallClock()
        let holds = EscalatingHolds(clock: clock)
        let readBefore = clock.now()
        clock.advance(by: .seconds(3))
        holds.hold("pair:1:+5511987654321", policy: policy, kind: .pairHold, reason: "131056")
        #expect(holds.held("pair:1:+5511987654321", at: readBefore) != nil)
        #expect(holds.held("pair:1:+5511987654321", at: clock.now()).map { $0.until.timeIntervalSince(clock.now()) } == 5)
    }

    @Test func whenAHoldEndsOneProbeGoesAndTheOthersWaitForItsResult() {
        let clock = ManualWallClock()
        let holds = EscalatingHolds(clock: clock)
        holds.hold("token:default", policy: policy, kind: .paused, reason: "190")
        clock.advance(by: .seconds(5))
        #expect(holds.held("token:default", at: clock.now()) == nil, "the first caller after the hold probes")
        let waiting = holds.held("token:default", at: clock.now())
        #expect(waiting != nil, "the others wait for the probe")
        #expect(waiting?.until == clock.now().addingTimeInterval(5))
        // The probe fails: the next pause is twice as long.
        #expect(holds.hold("token:default", policy: policy, kind: .paused, reason: "190").length == .seconds(10))
        clock.advance(by: .seconds(10))
        #expect(holds.held("token:default", at: clock.now()) == nil, "the next probe")
        // The probe succeeds: every message goes.
        holds.clear("token:default")
        #expect(holds.held("token:default", at: clock.now()) == nil)
        #expect(holds.held("token:default", at: clock.now()) == nil)
    }

    /// The store's answer to a late failure (the same hold, its end a millisecond off this
    /// worker's) leaves a probe that is out, out: the others keep waiting for its result (review:
    /// it was replaced, and a second probe went).
    @Test func theSameHoldJudgedElsewhereKeepsAProbeOut() {
        let clock = ManualWallClock()
        let holds = EscalatingHolds(clock: clock)
        let (until, _) = holds.hold("pair:1:+2", policy: policy, kind: .pairHold, reason: "131056")
        clock.advance(by: .seconds(5))
        #expect(holds.check("pair:1:+2", at: clock.now()) == .probe)
        holds.adopt("pair:1:+2", until: until.addingTimeInterval(-0.001), count: 0, policy: policy, kind: .pairHold, reason: "131056", replacing: true)
        #expect(holds.held("pair:1:+2", at: clock.now()) != nil, "the others still wait for the probe")
        // Another outage as judged elsewhere replaces it.
        holds.adopt("pair:1:+2", until: clock.now().addingTimeInterval(10), count: 1, policy: policy, kind: .pairHold, reason: "131056", replacing: true)
        #expect(holds.held("pair:1:+2", at: clock.now())?.count == 2)
    }

    @Test func aProbeThatNeverAnswersLetsAnotherTryAfterItsWait() {
        let clock = ManualWallClock()
        let holds = EscalatingHolds(clock: clock)
        holds.hold("sender:1", policy: policy, kind: .paused, reason: "10")
        clock.advance(by: .seconds(5))
        #expect(holds.held("sender:1", at: clock.now()) == nil)
        clock.advance(by: .seconds(5))
        #expect(holds.held("sender:1", at: clock.now()) == nil, "the first probe gave no answer in time: another probes")
    }

    @Test func clearingAKindEndsItsHoldsAndTheirEscalation() {
        let clock = ManualWallClock()
        let holds = EscalatingHolds(clock: clock)
        holds.hold("token:default", policy: policy, kind: .paused, reason: "190")
        holds.hold("pair:1:+1", policy: policy, kind: .pairHold, reason: "131056")
        #expect(holds.clear(kind: .paused) == ["token:default"])
        #expect(holds.held("token:default", at: clock.now()) == nil)
        #expect(holds.held("pair:1:+1", at: clock.now()) != nil, "other kinds stay")
        #expect(holds.hold("token:default", policy: policy, kind: .paused, reason: "190").length == .seconds(5), "from the first length again")
    }

    /// A request that began before the hold and fails after it ended (a slow answer of the same
    /// outage) is not the probe's failure: the next hold does not grow for it. The old code doubled it.
    @Test func aSlowFailureFromBeforeTheHoldDoesNotEscalateIt() {
        let clock = ManualWallClock()
        let holds = EscalatingHolds(clock: clock)
        let before = clock.now()
        clock.advance(by: .milliseconds(100))
        holds.hold("pair:1:+55", policy: policy, kind: .pairHold, reason: "131056", startedAt: before)
        clock.advance(by: .seconds(6))
        let stale = holds.hold("pair:1:+55", policy: policy, kind: .pairHold, reason: "131056", startedAt: before)
        #expect(stale.length == .zero, "the hold stays ended: the caller checks again")
        #expect(holds.held("pair:1:+55", at: clock.now()) == nil, "and the next caller probes")
        let probe = clock.now()
        clock.advance(by: .seconds(1))
        #expect(holds.hold("pair:1:+55", policy: policy, kind: .pairHold, reason: "131056", startedAt: probe).length == .seconds(10), "the probe's failure escalates")
    }
}
