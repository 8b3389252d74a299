import Foundation
import Logging
import PipelineKit
import RedisPlugin
import Testing
@testable import WhatsAppPlugin

/// Pair holds shared by two workers (two `FlowControl`s and two `SharedHolds` over one store,
/// SPEC 8, 17): a hold one worker meets holds the pair on the other within `freshness`, counts
/// one escalation, and a success on either starts the next outage over.
@Suite struct SharedHoldsTests {
    let clock = ManualWallClock()
    let logger = Logger(label: "test.shared-holds")
    let pair = "pair:105:+5511999"
    static let policies: [WaitReason: EscalationPolicy] = [.pairHold: DispatchStep.pairHold, .spamLimit: AccountLimits.spamBackoff]

    func worker(_ store: MemoryStore?) -> (flow: FlowControl, holds: SharedHolds) {
        (FlowControl(clock: clock, logger: logger), SharedHolds(store: store, policies: Self.policies))
    }

    @Test func aHoldOneWorkerMeetsHoldsThePairOnTheOtherAndEscalatesOnce() async throws {
        let store = MemoryStore(clock: clock)
        let (a, b) = (worker(store), worker(store))
        await b.holds.refresh("105", b.flow, at: clock.now(), logger: logger)
        let until = await a.holds.hold(pair, group: "105", policy: DispatchStep.pairHold, kind: .pairHold, reason: "131056", startedAt: clock.now(), a.flow, logger: logger)
        #expect(until == clock.now().addingTimeInterval(1))
        await b.holds.refresh("105", b.flow, at: clock.now(), logger: logger)
        #expect(b.flow.holds.held(pair, at: clock.now()) == nil, "the other trusts its last read for a quarter of a second")
        clock.advance(by: .milliseconds(250))
        await b.holds.refresh("105", b.flow, at: clock.now(), logger: logger)
        let held = try #require(b.flow.holds.held(pair, at: clock.now()), "read: the pair is held on the other worker too")
        #expect(held.until == until && held.kind == .pairHold)
        #expect(b.flow.holds.held("pair:105:+5511000", at: clock.now()) == nil, "other recipients flow")

        // The hold ends; the other worker's probe is refused too: one outage more, 4 s, on both.
        clock.advance(by: .milliseconds(800))
        #expect(b.flow.holds.check(pair, at: clock.now()) == .probe)
        let second = await b.holds.hold(pair, group: "105", policy: DispatchStep.pairHold, kind: .pairHold, reason: "131056", startedAt: clock.now(), b.flow, logger: logger)
        #expect(second == clock.now().addingTimeInterval(4), "the second hold of the pair across workers: 4 s")
        clock.advance(by: .milliseconds(250))
        await a.holds.refresh("105", a.flow, at: clock.now(), logger: logger)
        #expect(a.flow.holds.held(pair, at: clock.now())?.until == second, "and the first worker holds it as long")

        // A success on the first worker clears the pair everywhere: the next refusal holds it 1 s.
        clock.advance(by: .seconds(4))
        await a.holds.clear(pair, group: "105", a.flow, logger: logger)
        #expect(try await store.holds(group: "105", since: nil).holds.isEmpty, "cleared in the store")
        let third = await b.holds.hold(pair, group: "105", policy: DispatchStep.pairHold, kind: .pairHold, reason: "131056", startedAt: clock.now(), b.flow, logger: logger)
        #expect(third == clock.now().addingTimeInterval(1), "a new outage starts over at 1 s")
    }

    @Test func withTheStoreDownEachWorkerHoldsAloneAndNoMessageWaitsForIt() async throws {
        let store = MemoryStore(clock: clock)
        let (a, b) = (worker(store), worker(store))
        store.setAvailable(false)
        let until = await a.holds.hold(pair, group: "105", policy: DispatchStep.pairHold, kind: .pairHold, reason: "131056", startedAt: clock.now(), a.flow, logger: logger)
        #expect(until == clock.now().addingTimeInterval(1), "held on this worker")
        await b.holds.refresh("105", b.flow, at: clock.now(), logger: logger)
        #expect(b.flow.holds.held(pair, at: clock.now()) == nil)
        // Back: a read after the failed one waits for the retry, then finds what is written since.
        store.setAvailable(true)
        clock.advance(by: .milliseconds(500))
        _ = await a.holds.hold("pair:105:+5511000", group: "105", policy: DispatchStep.pairHold, kind: .pairHold, reason: "131056", startedAt: clock.now(),
                               a.flow, logger: logger)
        await b.holds.refresh("105", b.flow, at: clock.now(), logger: logger)
        #expect(b.flow.holds.held("pair:105:+5511000", at: clock.now()) == nil, "not read again before the retry")
        clock.advance(by: .milliseconds(500))
        await b.holds.refresh("105", b.flow, at: clock.now(), logger: logger)
        try await pollRead { b.flow.holds.held("pair:105:+5511000", at: clock.now()) != nil }
    }

    /// A read after a failed one runs without any message waiting for it: poll for its result.
    private func pollRead(_ condition: () -> Bool) async throws {
        for _ in 0..<500 where !condition() { try await Task.sleep(for: .milliseconds(10)) }
        #expect(condition(), "read once the store answers again")
    }
}
