import Foundation
import Logging
import PipelineKit
import Synchronization
import Testing

/// Who gets a sender's next send slot (SPEC 14): the most urgent lane first, first come, first
/// served within a lane, `max_share`, and no slot reserved more than 100 ms before it is used.
@Suite struct SendPacerTests {
    static let urgent = Lane(name: "urgent", rank: 0)
    static let bulk = Lane(name: "bulk", rank: 2)

    /// A pacer at 10 messages a second (one slot every 105.3 ms) on a clock that moves when told.
    private func pacer(store: (any SlotStore)? = nil, clock: ManualWallClock = ManualWallClock()) -> (SendPacer, ManualWallClock) {
        let flow = FlowControl(clock: clock, logger: Logger(label: "test"))
        return (flow.pacer(key: "throughput:1", label: "1", limit: 10, store: store), clock)
    }

    /// Asks for `ticket`'s turn until it comes, moving the clock to each time it is told to come back.
    private func turn(_ ticket: SendPacer.Ticket, _ pacer: SendPacer, _ clock: ManualWallClock) async -> Date {
        while true {
            switch await pacer.take(ticket) {
            case .go(let slot): return slot
            case .wait(let until): clock.advance(by: .nanoseconds(Int64(max(0, until.timeIntervalSince(clock.now())) * 1e9)))
            }
        }
    }

    @Test func anUrgentMessageGoesBeforeBulkMessagesThatCameFirst() async throws {
        let (pacer, clock) = pacer()
        let start = clock.now()
        let first = pacer.ticket(lane: Self.bulk, order: start)
        #expect(await pacer.take(first) == .go(start), "an idle sender's first message goes at once")
        let bulk = pacer.ticket(lane: Self.bulk, order: start)
        guard case .wait = await pacer.take(bulk) else { Issue.record("the next slot is more than 100 ms ahead: no turn yet"); return }
        let urgent = pacer.ticket(lane: Self.urgent, order: start.addingTimeInterval(0.001))
        let urgentSlot = await turn(urgent, pacer, clock)
        let bulkSlot = await turn(bulk, pacer, clock)
        #expect(urgentSlot < bulkSlot, "the urgent message takes the slot the bulk one was waiting for")
        #expect(abs(urgentSlot.timeIntervalSince(start) - 1 / 9.5) < 0.002, "at the sender's next slot: \(urgentSlot.timeIntervalSince(start))")
    }

    /// The wall clock stepped back an hour (NTP, a VM resumed): the sender's next slot, placed
    /// before the step, lay an hour ahead, and every message of the sender waited it out (audit).
    @Test func aWallClockSteppedBackIsNotWaitedOut() async throws {
        let (pacer, clock) = pacer()
        let start = clock.now()
        #expect(await pacer.take(pacer.ticket(lane: nil, order: start)) == .go(start))
        clock.advance(by: .seconds(-3600))
        let slot = await turn(pacer.ticket(lane: nil, order: clock.now()), pacer, clock)
        // At most a slot and the horizon ahead (105 ms + 100 ms), as anything the pacer places.
        let waited = clock.now().timeIntervalSince(start.addingTimeInterval(-3600))
        #expect(slot.timeIntervalSince(clock.now()) <= 0.21 && waited <= 0.21, "waited \(waited) s")
    }

    @Test func aLone130429SlowsTheSenderALittleAndAnotherSoonAfterHalvesIt() async throws {
        let (pacer, clock) = pacer()
        // A 130429 this long after the one before, and the fraction of the paced rate left after it.
        let steps: [(after: Duration, multiplier: Double, comment: Comment)] = [
            (.zero, 0.9, "a lone 130429 while paced at 95 %: 10 % slower"),
            (.milliseconds(500), 0.5, "another in the same second (a limit far below the configured one): half at once"),
            (.milliseconds(300), 0.5, "halvings at most once a second"),
            (.seconds(2), 0.25, "another within 10 s: half again"),
            (.seconds(10), 0.225, "10 s without one: a lone 130429 again, 10 % slower"),
            (.milliseconds(1500), 0.1125, "another within 10 s of a lone one, after its second: half"),
        ]
        for step in steps {
            clock.advance(by: step.after)
            pacer.slowDown()
            #expect(abs(pacer.rate - 9.5 * step.multiplier) < 1e-9, "\(step.comment): \(pacer.rate / 9.5) of the paced rate")
        }
    }

    @Test func withinALaneTheFirstComeGoesFirst() async throws {
        let (pacer, clock) = pacer()
        let start = clock.now()
        let tickets = (0..<4).map { pacer.ticket(lane: Self.bulk, order: start.addingTimeInterval(Double($0) * 0.001)) }
        var slots: [Date] = []
        // Asked for in reverse order: the line, not the asking, decides.
        for ticket in tickets.reversed() { _ = await pacer.take(ticket) }
        for ticket in tickets { slots.append(await turn(ticket, pacer, clock)) }
        #expect(slots == slots.sorted(), "slots in the order the messages came")
    }

    @Test func aMessageAwayDoesNotHoldTheLineAndTakesItsPlaceBackOnItsReturn() async throws {
        let (pacer, clock) = pacer()
        let start = clock.now()
        _ = await pacer.take(pacer.ticket(lane: Self.bulk, order: start))
        let away = pacer.ticket(lane: Self.bulk, order: start.addingTimeInterval(0.001))
        let present = pacer.ticket(lane: Self.bulk, order: start.addingTimeInterval(0.002))
        _ = await pacer.take(away)
        _ = await pacer.take(present)
        pacer.away(away)
        let slot = await turn(present, pacer, clock)
        #expect(slot.timeIntervalSince(start) < 0.2, "the next slot goes to the message that is here")
        // Back with its ticket's id, it is first in line again, ahead of a later message.
        let later = pacer.ticket(lane: Self.bulk, order: start.addingTimeInterval(0.003))
        _ = await pacer.take(later)
        let back = pacer.ticket(lane: Self.bulk, order: start.addingTimeInterval(0.001), id: away.id)
        #expect(await turn(back, pacer, clock) < (await turn(later, pacer, clock)))
    }

    @Test func maxShareGivesTheOtherLaneItsShareWhileBothWait() async throws {
        let (pacer, clock) = pacer()
        let start = clock.now()
        let cappedUrgent = Lane(name: "urgent", rank: 0, maxShare: 0.5)
        var line = (0..<4).map { ("urgent", pacer.ticket(lane: cappedUrgent, order: start.addingTimeInterval(Double($0) * 0.001))) }
            + (0..<4).map { ("bulk", pacer.ticket(lane: Self.bulk, order: start.addingTimeInterval(0.01 + Double($0) * 0.001))) }
        var order: [String] = []
        for _ in 0..<100 where !line.isEmpty {
            var went = false
            for (index, (lane, ticket)) in line.enumerated() {
                if case .go = await pacer.take(ticket) {
                    order.append(lane)
                    line.remove(at: index)
                    went = true
                    break
                }
            }
            if !went { clock.advance(by: .milliseconds(106)) }
        }
        // The first urgent message went while it was alone in line: a send no other lane waited for does
        // not count against its lane's share. From then on both lanes wait, and each gets every other slot.
        #expect(order == ["urgent", "urgent", "bulk", "urgent", "bulk", "urgent", "bulk", "bulk"])
    }

    /// A pacer at `limit` on a store another worker filled for the next 100 ms, and `count` bulk
    /// messages in line, a microsecond apart, that asked for their turn once (its answers, in line order).
    private func lineBehindAFullStore(limit: Double, count: Int, lane: Lane = bulk) async throws
        -> (pacer: SendPacer, store: CountingSlotStore, clock: ManualWallClock, start: Date, line: [SendPacer.Ticket], turns: [SendPacer.Turn]) {
        let clock = ManualWallClock()
        let store = CountingSlotStore(clock: clock)
        let flow = FlowControl(clock: clock, logger: Logger(label: "test"))
        let pacer = flow.pacer(key: "throughput:line", label: "line", limit: limit, store: store)
        let start = clock.now()
        _ = try await store.takeSlots(key: "throughput:line", interval: .nanoseconds(Int64(1e9 / (limit * SendPacer.headroom))), count: Int(limit),
                                      within: .milliseconds(100))
        let line = (0..<count).map { pacer.ticket(lane: lane, order: start.addingTimeInterval(Double($0) * 0.000_001)) }
        var turns: [SendPacer.Turn] = []
        for ticket in line { turns.append(await pacer.take(ticket)) }
        return (pacer, store, clock, start, line, turns)
    }

    /// At a rate far above demand, messages waiting in line that ask at the same moment in any order
    /// each take the slot held for their place at once, in line order: none is sent round to ask
    /// again (the bench's sender at 100,000/s went at 840 messages a second when only the first in
    /// line could take a slot and the rest came back a millisecond later, each time).
    @Test func atAHighRateEveryMessageTakesTheSlotHeldForItsPlaceAtOnce() async throws {
        // Another worker holds every slot of the next 100 ms: the line forms.
        let (pacer, store, clock, _, tickets, turns) = try await lineBehindAFullStore(limit: 100_000, count: 32)
        for turn in turns {
            guard case .wait = turn else { Issue.record("no slot is free yet"); return }
        }
        let fetchesBefore = store.fetches
        clock.advance(by: .milliseconds(250))
        // They come back together, in any order (here the last first): whoever asks first fetches slots
        // for everyone here, and each goes at once, with the slot of its place in line.
        var slots: [Int: Date] = [:]
        for (index, ticket) in tickets.enumerated().reversed() {
            guard case .go(let slot) = await pacer.take(ticket) else { Issue.record("message \(index) was told to wait"); continue }
            slots[index] = slot
        }
        let ordered = (0..<tickets.count).compactMap { slots[$0] }
        #expect(ordered.count == 32, "each took a slot when it asked")
        #expect(ordered == ordered.sorted() && Set(ordered).count == ordered.count, "distinct slots, in the order of the line")
        #expect(store.fetches == fetchesBefore + 1, "one fetch for the whole line: \(store.fetches - fetchesBefore)")
    }

    /// A message behind places away does not wait for their turns: while they are in a delay queue
    /// the sender's slots would go unused (three workers sharing two senders reached 65–75 % of
    /// their rate, most of each worker's line away). It fetches once and goes — in a lane capped by
    /// `max_share` too, while no other lane waits.
    @Test(arguments: [bulk, Lane(name: "urgent", rank: 0, maxShare: 0.5)])
    func aMessageBehindPlacesAwayDoesNotWaitForTheirTurns(lane: Lane) async throws {
        // Another worker holds the next 100 ms: the line forms; all but the first of it then go round the source.
        let (pacer, store, clock, start, line, _) = try await lineBehindAFullStore(limit: 1_000, count: 51, lane: lane)
        for ticket in line.dropFirst() { pacer.away(ticket) }
        clock.advance(by: .milliseconds(150))
        let behind = pacer.ticket(lane: lane, order: start.addingTimeInterval(0.001))
        let fetchesBefore = store.fetches
        guard case .go = await pacer.take(behind) else {
            Issue.record("one place here is ahead of it and the store has room: its slot now")
            return
        }
        #expect(store.fetches - fetchesBefore == 1, "one fetch for the two here: \(store.fetches - fetchesBefore)")
    }

    @Test func aDueSlotWhoseMessageIsNotHereGoesToTheOneThatAsks() async throws {
        let (pacer, _, clock, _, line, _) = try await lineBehindAFullStore(limit: 100, count: 3)
        clock.advance(by: .milliseconds(250))
        guard case .go = await pacer.take(line[0]) else { Issue.record("the first in line takes a batch for the three here"); return }
        clock.advance(by: .milliseconds(15))
        let late = pacer.ticket(lane: Self.bulk, order: clock.now())
        guard case .go(let slot) = await pacer.take(late) else { Issue.record("the due slot was left to expire"); return }
        #expect(slot <= clock.now() && clock.now().timeIntervalSince(slot) < SendPacer.staleness, "the slot due now: \(clock.now().timeIntervalSince(slot)) s ago")
    }

    /// A slot is handed out at most 25 ms after its time: at 95 % of the limit a one-second window
    /// then holds at most 97.4 % of it plus one. With 50 ms (99.75 % plus one) one worker reached 80
    /// in a second at a limit of 80, leaving network jitter no room.
    @Test func noSlotIsHandedOutMoreThan25MillisecondsAfterItsTime() async throws {
        let (pacer, _, clock, _, line, _) = try await lineBehindAFullStore(limit: 100, count: 6)
        clock.advance(by: .milliseconds(250))
        guard case .go = await pacer.take(line[0]) else { Issue.record("the first in line takes a batch for the six here"); return }
        // The others' messages are late: 45 ms after the first slot, those of the batch 25 ms old or more are past.
        clock.advance(by: .milliseconds(45))
        var went = 0
        for ticket in line.dropFirst() {
            guard case .go(let slot) = await pacer.take(ticket) else { continue }
            went += 1
            #expect(clock.now().timeIntervalSince(slot) <= 0.025 + 1e-6, "a slot \(Int((clock.now().timeIntervalSince(slot) * 1000).rounded())) ms old")
        }
        #expect(went > 0, "the slots still due go")
    }

    /// A worker asks the store for as many slots as it has messages to take them in time: a place
    /// whose message sleeps until a turn beyond the horizon does not count (its slot would expire
    /// here while another worker's message could have used it).
    @Test func aWorkerAsksOnlyForTheSlotsItsMessagesCanTakeInTime() async throws {
        let (pacer, store, clock, _, line, _) = try await lineBehindAFullStore(limit: 100, count: 40)
        clock.advance(by: .milliseconds(200))
        _ = await pacer.take(line[0])
        #expect(store.lastAsked > 1 && store.lastAsked < 40, "asked for the places due within the horizon, not all 40: \(store.lastAsked)")
    }

    /// A message behind others here that are not due back soon does not fetch for them: the fetch
    /// would ask only for those due soon, its own place would lie beyond what came, and it would
    /// fetch again and again until the horizon was full (slots for places that sleep past them).
    @Test func aMessageBehindPlacesNotDueSoonDoesNotFetchAgainAndAgain() async throws {
        let (pacer, store, clock, _, line, _) = try await lineBehindAFullStore(limit: 100, count: 30)
        clock.advance(by: .milliseconds(150))
        let fetchesBefore = store.fetches
        guard case .wait = await pacer.take(line[29]) else { Issue.record("29 places are ahead of it: not its turn"); return }
        #expect(store.fetches == fetchesBefore, "no fetch for places that would not come in time: \(store.fetches - fetchesBefore)")
    }

    /// Bulk (the least urgent lane) asks for the next slot a quarter of the horizon before it is
    /// due, so the store's next slot is taken before it passes: an ask that came once it was due
    /// lost the time it came late (a wake-up, the trip to Redis) — on every worker, every 100 ms.
    @Test func bulkAsksForTheNextSlotBeforeItIsDue() async throws {
        let (pacer, store, clock, _, line, turns) = try await lineBehindAFullStore(limit: 100, count: 1)
        guard case .wait(let until) = turns[0], let nextSlot = store.nextSlot else { Issue.record("another worker holds the horizon: \(turns)"); return }
        #expect(nextSlot.timeIntervalSince(until) >= SendPacer.horizon / 4 - 0.001, "asks \(nextSlot.timeIntervalSince(until)) s before the next slot is due")
        clock.advance(by: .nanoseconds(Int64(until.timeIntervalSince(clock.now()) * 1e9)))
        guard case .go(let slot) = await pacer.take(line[0]) else { Issue.record("its ask finds room"); return }
        #expect(slot == nextSlot, "it takes the next slot: none passed unused")
    }

    /// Lone messages, one a millisecond, to a pacer far below its limit on `store`; the slots they took.
    /// `before` runs before each message asks for its turn.
    private func loneMessages(_ count: Int, _ pacer: SendPacer, _ clock: ManualWallClock, before: () async -> Void = {}) async -> [Date] {
        var slots: [Date] = []
        for index in 0..<count {
            await before()
            let ticket = pacer.ticket(lane: nil, order: clock.now())
            guard case .go(let slot) = await pacer.take(ticket) else {
                Issue.record("message \(index) was told to wait far below the limit")
                return slots
            }
            slots.append(slot)
            clock.advance(by: .milliseconds(1))
        }
        return slots
    }

    /// Messages that come one by one (concurrency 1) far below the limit do not each fetch a slot of
    /// their own (a round trip to Redis a message, 0.82 × the throughput of pacing off in
    /// `scripts/bench pacing` at concurrency 1): a fetch takes spare slots for those about to come,
    /// none beyond the first quarter of the horizon.
    @Test func loneMessagesFarBelowTheLimitShareFetches() async throws {
        let clock = ManualWallClock()
        let store = CountingSlotStore(clock: clock)
        let pacer = FlowControl(clock: clock, logger: Logger(label: "test")).pacer(key: "throughput:lone", label: "lone", limit: 100_000, store: store)
        let slots = await loneMessages(200, pacer, clock)
        #expect(slots.count == 200 && slots == slots.sorted() && Set(slots).count == 200, "each went at once, on a slot of its own, in order")
        #expect(store.fetches <= 20, "fetches for 200 messages one a millisecond: \(store.fetches)")
        #expect(store.furthestAhead <= .milliseconds(25), "slots reserved at most a quarter of the horizon ahead: \(store.furthestAhead)")
    }

    /// Spare slots only while the sender's capacity is idle: a fetch that finds another worker
    /// using it (its next slot ahead) gets slots for the message here only.
    @Test func noSpareSlotsWhileAnotherWorkerUsesTheSendersCapacity() async throws {
        let clock = ManualWallClock()
        let store = CountingSlotStore(clock: clock)
        let interval = Duration.nanoseconds(Int64(1e9 / (10_000 * SendPacer.headroom)))
        let pacer = FlowControl(clock: clock, logger: Logger(label: "test")).pacer(key: "throughput:busy", label: "busy", limit: 10_000, store: store)
        var grants: [Int] = []
        var fetches = 0
        let record = {
            if store.fetches > fetches { grants.append(store.lastGranted) }
            fetches = store.fetches
        }
        _ = await loneMessages(100, pacer, clock, before: record)
        #expect(grants.contains { $0 > 1 }, "the flow took spare slots while the capacity was idle: \(grants)")
        (grants, fetches) = ([], store.fetches)
        _ = await loneMessages(100, pacer, clock) {
            record()
            // Another worker takes five slots just before each of these messages asks.
            _ = try? await store.takeSlots(key: "throughput:busy", interval: interval, count: 5, within: .milliseconds(100))
            fetches = store.fetches
        }
        #expect(!grants.isEmpty, "the flow fetched again meanwhile")
        #expect(grants.allSatisfy { $0 == 1 }, "granted only the slot of the message here while the capacity was in use: \(grants)")
    }

    /// At the default 80/s (a slot every 13 ms) a fetch takes no spares: a round trip matters little
    /// there, and a spare would reach beyond the first quarter of the horizon.
    @Test func noSpareSlotsAtEightyASecond() async throws {
        let clock = ManualWallClock()
        let store = CountingSlotStore(clock: clock)
        let pacer = FlowControl(clock: clock, logger: Logger(label: "test")).pacer(key: "throughput:80", label: "80", limit: 80, store: store)
        var grants: [Int] = []
        for _ in 0..<40 {
            let fetches = store.fetches
            guard case .go = await pacer.take(pacer.ticket(lane: nil, order: clock.now())) else {
                Issue.record("one message every 15 ms is below 76/s: no wait")
                return
            }
            if store.fetches > fetches { grants.append(store.lastGranted) }
            clock.advance(by: .milliseconds(15))
        }
        #expect(grants.count == 40 && grants.allSatisfy { $0 == 1 }, "one slot a fetch, a fetch a message: \(grants)")
    }

    @Test func noSlotIsReservedMoreThan100MillisecondsBeforeItIsUsed() async throws {
        let clock = ManualWallClock()
        let store = CountingSlotStore(clock: clock)
        let (pacer, _) = pacer(store: store, clock: clock)
        let start = clock.now()
        let tickets = (0..<20).map { pacer.ticket(lane: Self.bulk, order: start.addingTimeInterval(Double($0) * 0.001)) }
        for ticket in tickets { _ = await pacer.take(ticket) }
        var slots: [Date] = []
        for ticket in tickets { slots.append(await turn(ticket, pacer, clock)) }
        #expect(store.furthestAhead <= .milliseconds(100) + .microseconds(1), "reserved at most 100 ms ahead: \(store.furthestAhead)")
        #expect(slots == slots.sorted())
        let spacing = zip(slots.dropFirst(), slots).map { $0.timeIntervalSince($1) }
        #expect(spacing.allSatisfy { abs($0 - 1 / 9.5) < 0.002 }, "one slot every 105 ms: \(spacing)")
    }
}

/// A slot store on the test's clock: a GCRA like the Redis one, recording how far ahead of its
/// now it ever granted a slot.
private final class CountingSlotStore: SlotStore {
    private let state = Mutex<(tat: Date?, furthest: Duration, fetches: Int, lastAsked: Int, lastGranted: Int)>((nil, .zero, 0, 0, 0))
    private let clock: ManualWallClock

    init(clock: ManualWallClock) {
        self.clock = clock
    }

    var furthestAhead: Duration { state.withLock { $0.furthest } }
    var fetches: Int { state.withLock { $0.fetches } }
    /// How many slots the last fetch asked for.
    var lastAsked: Int { state.withLock { $0.lastAsked } }
    /// How many slots the last fetch was granted (spares included).
    var lastGranted: Int { state.withLock { $0.lastGranted } }
    /// The next slot it would grant (the GCRA's theoretical arrival time).
    var nextSlot: Date? { state.withLock { $0.tat } }

    func takeSlots(key: String, interval: Duration, count: Int, spare: Int, within horizon: Duration) async throws -> SlotGrant {
        let now = clock.now()
        return state.withLock { state in
            state.fetches += 1
            state.lastAsked = count
            state.lastGranted = 0
            let (tat, wanted) = (state.tat ?? now) <= now ? (now, count + spare) : (state.tat ?? now, count)
            let room = now.addingTimeInterval(horizon.secondsDouble).timeIntervalSince(tat)
            if room < -1e-6 { return SlotGrant(first: .nanoseconds(Int64(-room * 1e9)), count: 0) }
            let granted = min(wanted, Int(max(0, room) / interval.secondsDouble) + 1)
            state.lastGranted = granted
            let last = tat.addingTimeInterval(interval.secondsDouble * Double(granted - 1))
            state.furthest = max(state.furthest, .nanoseconds(Int64(last.timeIntervalSince(now) * 1e9)))
            state.tat = last.addingTimeInterval(interval.secondsDouble)
            return SlotGrant(first: .nanoseconds(Int64(tat.timeIntervalSince(now) * 1e9)), count: granted)
        }
    }

    func health() async -> HealthStatus { .up }
    func shutdown() async {}
}
