import Foundation
import Logging
import MetricsTestKit
import PipelineKit
import Testing
import TestSupport

/// A sender's pacer is let go once no message has asked it for a turn for `idlePacerLifetime`
/// and none has a place in its line: a worker that sees many senders (or a `phoneNumberId` the
/// Cloud API refuses) does not keep a pacer and its metric series for each for its life.
@Suite struct IdlePacerTests {
    private let clock = ManualWallClock()
    private var flow: FlowControl { FlowControl(clock: clock, logger: Logger(label: "test")) }

    private func pacer(_ flow: FlowControl, _ label: String, limit: Double = 10) -> SendPacer {
        flow.pacer(key: "throughput:\(label)", label: label, limit: limit, store: nil)
    }

    private func pass(_ seconds: TimeInterval) {
        clock.advance(by: .milliseconds(Int64(seconds * 1000)))
    }

    @Test func anIdlePacerIsLetGoWithItsMetricSeriesWhenANewSenderComes() async throws {
        _ = TestMetricsSystem.shared
        let flow = flow
        let label = "idle-\(UUID().uuidString)"
        let idle = pacer(flow, label)
        let generation = idle.generation
        #expect(await idle.take(idle.ticket(lane: nil, order: nil)) == .go(clock.now()))
        #expect((try? TestMetricsSystem.shared.expectGauge("outbound_sender_rate", [("sender", label)])) != nil, "the pacer's rate is reported")
        pass(FlowControl.idlePacerLifetime + 1)
        #expect(pacer(flow, label) === idle, "asked for again, its own sender keeps it: only a new pacer's making looks for idle ones")
        _ = pacer(flow, "another-\(label)")
        #expect(idle.generation != generation, "a step keeping it sees it is no longer the sender's")
        #expect((try? TestMetricsSystem.shared.expectGauge("outbound_sender_rate", [("sender", label)])) == nil, "its series is gone")
        let next = pacer(flow, label)
        #expect(next !== idle, "the sender's next message makes a new one")
        #expect(await next.take(next.ticket(lane: nil, order: nil)) == .go(clock.now()))
        #expect((try? TestMetricsSystem.shared.expectGauge("outbound_sender_rate", [("sender", label)])) != nil, "reported again")
    }

    @Test func aPacerAskedWithinTheLifetimeIsKept() async {
        let flow = flow
        let busy = pacer(flow, "busy")
        pass(FlowControl.idlePacerLifetime - 30)
        #expect(await busy.take(busy.ticket(lane: nil, order: nil)) == .go(clock.now()))
        pass(60)
        _ = pacer(flow, "another")
        #expect(pacer(flow, "busy") === busy, "asked 60 s ago")
    }

    @Test func aPacerWhoseSendsAreAnsweredIsKeptWithoutTurns() async {
        // With pacing off, messages take no turns: their answers still use the sender's pacer.
        let flow = flow
        let (answered, slowed) = (pacer(flow, "answered"), pacer(flow, "slowed"))
        pass(FlowControl.idlePacerLifetime - 30)
        answered.speedUp()
        slowed.slowDown()
        pass(60)
        _ = pacer(flow, "another")
        #expect(pacer(flow, "answered") === answered, "a send succeeded 60 s ago")
        #expect(pacer(flow, "slowed") === slowed, "a 130429 60 s ago: its slowdown is kept")
    }

    @Test func aPacerWithAPlaceInItsLineIsKeptHoweverLongItIsIdle() async {
        let flow = flow
        // One message every 1,053 s: the second message's turn is further ahead than the lifetime.
        let line = pacer(flow, "line", limit: 0.001)
        let start = clock.now()
        #expect(await line.take(line.ticket(lane: nil, order: start)) == .go(start))
        let waiting = line.ticket(lane: nil, order: start)
        guard case .wait(let until) = await line.take(waiting) else { Issue.record("the next slot is ahead"); return }
        #expect(until.timeIntervalSince(start) > FlowControl.idlePacerLifetime + 60)
        // The message leaves the worker until its turn (through a delay queue): its place stays.
        line.away(waiting)
        pass(FlowControl.idlePacerLifetime + 1)
        _ = pacer(flow, "first-sweep")
        #expect(pacer(flow, "line", limit: 0.001) === line, "a message's place is in its line")
        // Not asked again, the place is forgotten a little after its turn was due; the pacer then goes.
        pass(until.timeIntervalSince(clock.now()) + 3)
        _ = pacer(flow, "second-sweep")
        #expect(pacer(flow, "line", limit: 0.001) !== line, "its place forgotten, the pacer is let go")
    }

    @Test func aRetiredPacerSendsAMessageThatStillAsksItBackAtOnce() async {
        let flow = flow
        let old = pacer(flow, "late")
        let ticket = old.ticket(lane: nil, order: nil)
        pass(FlowControl.idlePacerLifetime + 1)
        _ = pacer(flow, "newcomer")
        // The message had looked the pacer up just before it was let go.
        #expect(await old.take(ticket) == .wait(until: clock.now()), "no slot from a pacer no longer the sender's")
        let new = pacer(flow, "late")
        #expect(await new.take(new.ticket(lane: nil, order: nil, id: ticket.id)) == .go(clock.now()), "the new pacer gives the turn")
    }
}
