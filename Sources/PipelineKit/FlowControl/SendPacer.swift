import Foundation
import Logging
import Metrics
import Synchronization

/// Paces one key (a sender) at its limit and decides which of its waiting messages goes next: the
/// most urgent lane first (within `max_share`), first come, first served within a lane (SPEC 14).
///
/// Slots come from a `SlotStore` shared by every worker (a GCRA), or from a local one while there
/// is no store or it is down, and are reserved at most `horizon` before they are used: a slot held
/// for a bulk message never holds an urgent one back by more than that, on any worker. A fetch
/// takes slots for the messages waiting here and, while the sender's capacity is idle, a few spare
/// ones for those about to come (`spareSlots`). A message takes a place in line (`ticket`) and
/// asks for its turn (`take`): it goes (`.go(slot)`) or comes back at the time its turn is
/// expected (`.wait(until:)`), keeping its place. A message that leaves the worker meanwhile
/// (through a delay queue) steps `away`: its place neither holds the line nor delays the turns of
/// those behind it (the messages here use the slots meanwhile), and it takes it up again, ahead of
/// those that came after it, when it asks with the same ticket (`Ticket.id`, carried with the
/// message); a place not asked for soon after its expected turn is forgotten.
///
/// It paces at 95 % of the limit and hands out a slot at most `staleness` (25 ms) after its time,
/// so a one-second window holds at most 95 % × 1.025 ≈ 97.4 % of the limit, plus one: the rest is
/// room for network jitter (with 50 ms, 99.75 % plus one left none: one worker reached 80 in a
/// second at a limit of 80); `slowDown` slows it by 10 % when the other side says it was exceeded, by half when it
/// says so again within 10 s (at most once a second), `speedUp` wins 5 % of the limit back per
/// second of successful sends.
///
/// ```swift
/// let ticket = pacer.ticket(lane: message.lane, order: message.firstSeen, id: idCarriedByTheMessage)
/// switch await pacer.take(ticket) {
/// case .go(let slot): send at `slot` (now, or within `horizon`)
/// case .wait(let until): carry `ticket.id`, return .wait(Wait(key: pacer.key, until: until, reason: .throughput))
/// }
/// // the message leaves the worker before its turn: pacer.away(ticket)
/// ```
public final class SendPacer: Sendable {
    /// Fraction of the limit paced at.
    public static let headroom = 0.95
    /// A slot this far in the past may still be used (capacity not used yet, within the headroom's tolerance).
    public static let staleness: TimeInterval = 0.025
    /// A slot is reserved at most this long before it is used.
    public static let horizon: TimeInterval = 0.1
    /// `max_share` is measured over the sends of this long.
    public static let shareWindow: TimeInterval = 5
    /// Ticket ids: in order within a worker (first come, first served among messages that entered at
    /// the same instant), from a random start so no two workers' ids meet.
    private static let nextTicketID = Atomic<UInt64>(UInt64.random(in: 0...(UInt64.max / 2)))
    /// A 130429 this long after the last one slows a sender by 10 %; sooner, by half.
    static let calmAfter: TimeInterval = 10
    /// A place whose message has not asked for its turn this long after it was expected to is forgotten.
    static let abandonedAfter: TimeInterval = 2
    /// The least urgent lane (and a pipeline without lanes) asks this far into the horizon's room,
    /// as a fraction of it: after every more urgent lane, yet a quarter of the horizon before the
    /// next slot is due — an ask that came once it was due would lose the time it came late (its
    /// wake-up, the trip to the store), on every worker, every horizon.
    static let lastAsk = 0.75

    /// A message's place in line, kept with the message while it waits for its turn.
    public struct Ticket: Sendable, Hashable {
        /// Names the place across a trip through the source (unique among every worker's places).
        public let id: UInt64
        fileprivate var rank: Int
        /// When its lane asks for slots the horizon has room for, as a fraction of the horizon: 0 for
        /// the most urgent lane, ½ for the next, `lastAsk` for the rest and without lanes.
        fileprivate var askDelay: Double
        fileprivate var maxShare: Double
        fileprivate var order: Date

        /// Lanes first (most urgent), then first come, first served.
        fileprivate func precedes(_ other: Ticket) -> Bool {
            (rank, order, id) < (other.rank, other.order, other.id)
        }
    }

    /// The answer to `take`.
    public enum Turn: Sendable, Equatable {
        /// The message's slot: send at this time (now, or at most `horizon` ahead).
        case go(Date)
        /// Not its turn yet: ask again then, with the same ticket.
        case wait(until: Date)
    }

    private struct Place {
        var ticket: Ticket
        /// When the message was last told to come back.
        var due: Date
        /// Whether its message is in this worker (not away through the source).
        var present = true
    }

    /// What `take` does next, decided under the lock.
    private enum Next {
        case turn(Turn)
        case fetch(any SlotStore, count: Int, spare: Int, interval: TimeInterval)
        case waitForFetch
    }

    private struct State {
        var limit: Double
        var store: (any SlotStore)?
        var multiplier = 1.0
        var lastSlowdown: Date?
        /// The last slowdown was for a lone 130429 (10 %), not a halving.
        var lastSlowdownWasLone = false
        /// Slots taken from the store and not used yet, earliest first (none more than `horizon` ahead).
        var slots: [Date] = []
        var localNext: Date?
        var storeRetryAt: Date?
        /// The store's horizon has room for a slot again then (when it was found full).
        var storeFullUntil: Date?
        var fetching = false
        var waiters: [CheckedContinuation<Void, Never>] = []
        var places: [UInt64: Place] = [:]
        var lastForgotten = Date.distantPast
        /// The latest slot handed out: pacing alone (the store down) starts after it.
        var lastSlot: Date?
        /// Recent sends by lane rank, oldest first (for `max_share`).
        var sends: [(at: Date, rank: Int)] = []
        /// Slots handed out here, counted in windows of `staleness` (the current one, from `since`, and the one before).
        var handedOut = (since: Date.distantPast, current: 0, previous: 0)

        var rate: Double { limit * SendPacer.headroom * multiplier }
        var interval: TimeInterval { 1 / rate }
        /// Slots dropped unused (expired, or let go by a reload or a slowdown) since the last look (`outbound_send_slots_unused_total`).
        var unused = 0
        /// When a message last asked for a turn or was answered (or the pacer was made).
        var lastUsed: Date
        /// Let go by `FlowControl` (idle): a message that asks still is told to come back at once, and
        /// then finds the sender's new pacer.
        var retired = false

        mutating func forget(before now: Date) {
            let oldest = now.addingTimeInterval(-SendPacer.staleness)
            let stale = slots.firstIndex { $0 >= oldest } ?? slots.count
            unused += stale
            slots.removeFirst(stale)
            // Nothing is placed further ahead than a horizon and a slot: what is was placed before the wall
            // clock stepped back (NTP, a VM resumed), and is let go or brought back instead of waited out.
            let furthest = now.addingTimeInterval(SendPacer.horizon + interval)
            if let beyond = slots.firstIndex(where: { $0 > furthest }) {
                unused += slots.count - beyond
                slots.removeSubrange(beyond...)
            }
            if let local = localNext, local > furthest { localNext = furthest }
            if let full = storeFullUntil, full > furthest { storeFullUntil = furthest }
            // Forgotten places are looked for a few times a second, not on every turn (the line may be long).
            if now.timeIntervalSince(lastForgotten) >= 0.25 || now < lastForgotten {
                lastForgotten = now
                let abandoned = now.addingTimeInterval(-SendPacer.abandonedAfter)
                places = places.filter { $0.value.due >= abandoned }
            }
            let window = now.addingTimeInterval(-SendPacer.shareWindow)
            sends.removeFirst(sends.firstIndex { $0.at >= window } ?? sends.count)
        }

        /// Slots from the store for the messages here, if it may be asked now: a fetch, a wait for
        /// the one under way, or — its horizon full — when `ticket`'s lane asks again. `nil`: no
        /// store, or it is down and this worker paces alone meanwhile.
        mutating func askStore(for ticket: Ticket, now: Date) -> Next? {
            guard let store, storeRetryAt.map({ now >= $0 }) ?? true else { return nil }
            // The most urgent lane asks as soon as a slot fits the horizon, the next a little later, and
            // so on: across workers the more urgent message comes first. The least urgent (and a
            // pipeline without lanes) asks shortly before the next slot is due (`lastAsk`), then takes
            // a batch and uses each slot as it comes.
            if let room = storeFullUntil, case let asks = room.addingTimeInterval(SendPacer.horizon * ticket.askDelay), asks > now {
                places[ticket.id]?.due = asks
                return .turn(.wait(until: asks))
            }
            if fetching { return .waitForFetch }
            fetching = true
            let wanted = min(512, max(1, dueSoon(now: now)))
            return .fetch(store, count: wanted, spare: spareSlots(now: now, wanted: wanted), interval: interval)
        }

        /// Slots a fetch may take beyond the messages here, which the store grants only if the
        /// sender's capacity is idle when it asks (no slot of it reserved beyond the store's now):
        /// three quarters as many as went out here in the last `staleness` (or so far in this one, if
        /// more), so a steady flow of messages that come one by one (at concurrency 1 every message
        /// came alone and fetched its own slot, a round trip to Redis a message) finds most slots here
        /// already, and takes them before they expire (a flow as steady takes them within three
        /// quarters of `staleness`). A fetch that takes spares lies
        /// wholly within the first quarter of the horizon (another worker's urgent message waits at
        /// most that for them): none at limits under about 85/s (a slot every 12 ms or more, where a
        /// round trip matters little).
        mutating func spareSlots(now: Date, wanted: Int) -> Int {
            countHandOuts(now: now, adding: 0)
            return min(max(handedOut.previous, handedOut.current) * 3 / 4, max(0, Int(SendPacer.horizon / 4 / interval) - wanted))
        }

        /// Moves the windows of `handedOut` on to the one `now` is in, then counts `adding` slots handed out.
        mutating func countHandOuts(now: Date, adding: Int) {
            let windows = (now.timeIntervalSince(handedOut.since) / SendPacer.staleness).rounded(.down)
            if windows == 1 {
                handedOut = (handedOut.since.addingTimeInterval(SendPacer.staleness), 0, handedOut.current)
            } else if windows != 0 {
                // Idle for a window or more (or the clock went back): nothing recent to go by.
                handedOut = (now, 0, 0)
            }
            handedOut.current += adding
        }

        /// How many slots a fetch asks for (spares aside): as many as there are messages here to take
        /// them in time (back for their turns within the horizon and the lateness a slot allows) — a
        /// slot nobody here takes is one no other worker gets.
        func dueSoon(now: Date) -> Int {
            let soon = now.addingTimeInterval(SendPacer.horizon + SendPacer.staleness)
            return places.values.count { $0.present && $0.due <= soon }
        }

        /// The place whose turn it is: the first present in line whose lane is within its
        /// `max_share` (a lane past it waits while another lane has messages waiting).
        func first() -> Ticket? {
            var best: Ticket?
            var bestCapped: Ticket?
            let lanes = Set(places.values.map(\.ticket.rank)).count
            // Each lane's share, worked out once (not per place).
            var shares: [Int: Double] = [:]
            for place in places.values where place.present {
                let ticket = place.ticket
                let capped = isCapped(ticket, lanes: lanes) { rank in
                    let share = shares[rank] ?? self.share(of: rank)
                    shares[rank] = share
                    return share
                }
                if capped {
                    if bestCapped.map(ticket.precedes) ?? true { bestCapped = ticket }
                } else if best.map(ticket.precedes) ?? true {
                    best = ticket
                }
            }
            return best ?? bestCapped
        }

        /// `slot` goes to `ticket`: its place is freed, and the send counted for its lane's share
        /// while another lane has messages waiting (sends made alone do not count against a lane).
        mutating func handOut(_ ticket: Ticket, _ slot: Date, now: Date) -> Date {
            places[ticket.id] = nil
            countHandOuts(now: now, adding: 1)
            lastSlot = max(lastSlot ?? slot, slot)
            if places.values.contains(where: { $0.ticket.rank != ticket.rank }) {
                sends.append((slot, ticket.rank))
            } else {
                sends.removeAll()
            }
            return slot
        }

        /// Whether `ticket`'s lane is past its `max_share` while another lane has messages waiting
        /// (`lanes`: how many lanes have places; `share`: a lane's share of the recent sends).
        func isCapped(_ ticket: Ticket, lanes: Int, share: (Int) -> Double) -> Bool {
            lanes > 1 && ticket.maxShare < 1 && share(ticket.rank) > ticket.maxShare
        }

        /// Whether the slot due at `due` would expire unless `ticket` takes it, asking `now`: no
        /// message ahead of it here is due back in time to take it (one long overdue is not coming
        /// soon), and its lane is within its `max_share` (else the slot is another lane's share).
        func isUnclaimed(_ due: Date, by ticket: Ticket, now: Date) -> Bool {
            let (overdue, lastUse) = (now.addingTimeInterval(-SendPacer.staleness), due.addingTimeInterval(SendPacer.staleness))
            return !places.values.contains {
                $0.present && $0.due >= overdue && $0.due <= lastUse && $0.ticket.id != ticket.id && $0.ticket.precedes(ticket)
            } && !isCapped(ticket)
        }

        /// Whether `ticket`'s lane is past its `max_share` while another lane has messages waiting.
        func isCapped(_ ticket: Ticket) -> Bool {
            isCapped(ticket, lanes: Set(places.values.map(\.ticket.rank)).count, share: share(of:))
        }

        func share(of rank: Int) -> Double {
            guard !sends.isEmpty else { return 0 }
            return Double(sends.count(where: { $0.rank == rank })) / Double(sends.count)
        }

        /// When `ticket`'s turn is expected (it is not the first in line): after the places ahead of
        /// it, one slot each, counting a lane capped by `max_share` for its share only; never sooner
        /// than the next slot.
        func expectedTurn(of ticket: Ticket, now: Date) -> Date {
            let ahead = slotsAhead(of: ticket)
            let turn: Date
            if ahead < slots.count {
                turn = slots[ahead]
            } else {
                let base = max(slots.last.map { $0.addingTimeInterval(interval) } ?? storeFullUntil.map { $0.addingTimeInterval(SendPacer.horizon) } ?? localNext ?? now, now)
                turn = base.addingTimeInterval(Double(ahead - slots.count) * interval)
            }
            // (At least a millisecond: at a high rate, a message behind would otherwise ask again at once, and again.)
            return max(turn, now.addingTimeInterval(max(slots.isEmpty ? interval : 0, 0.001)))
        }

        /// How many slots go to others before `ticket`'s (`placesAhead`, whole).
        func slotsAhead(of ticket: Ticket) -> Int {
            Int(min(placesAhead(of: ticket), 1_000_000).rounded(.up))
        }

        /// How many slots go to others before `ticket`'s: the places here ahead of it in its lane;
        /// those of more urgent lanes, or, for a lane capped by `max_share`, as many as its share
        /// leaves them; and, when its own lane is capped while less urgent lanes wait, their share
        /// too. Places away take no turn here: counted, they kept the messages here asleep while
        /// the sender's slots went unused (three workers reached 65–75 % of a sender's rate). A
        /// lane capped by `max_share` while another lane waits still counts them (with fewer turns
        /// ahead it took the slots held here for its place before the others' share).
        private func placesAhead(of ticket: Ticket) -> Double {
            var byRank: [Int: (count: Int, maxShare: Double)] = [:]
            var own = 0
            let countsAway = ticket.maxShare < 1 && places.values.contains { $0.ticket.rank != ticket.rank }
            for place in places.values where place.ticket.id != ticket.id && (place.present || countsAway) {
                if place.ticket.rank == ticket.rank {
                    if place.ticket.precedes(ticket) { own += 1 }
                } else {
                    byRank[place.ticket.rank, default: (0, place.ticket.maxShare)].count += 1
                }
            }
            var ahead = Double(own)
            for (rank, lane) in byRank where rank < ticket.rank {
                ahead += lane.maxShare < 1 ? min(Double(lane.count), Double(own + 1) * lane.maxShare / (1 - lane.maxShare)) : Double(lane.count)
            }
            if ticket.maxShare < 1, byRank.keys.contains(where: { $0 > ticket.rank }) {
                ahead += Double(own + 1) * (1 - ticket.maxShare) / ticket.maxShare
            }
            return ahead
        }
    }

    /// The key paced (`throughput:{sender}`), also the key of waits for it.
    public let key: String
    private let clock: any WallClock
    private let logger: Logger
    private let state: Mutex<State>
    private let rateGauge: Gauge
    private let unusedSlots: Counter

    init(key: String, label: String, limit: Double, store: (any SlotStore)?, clock: any WallClock, logger: Logger) {
        self.key = key
        self.clock = clock
        self.logger = logger
        state = Mutex(State(limit: max(limit, 0.001), store: store, lastUsed: clock.now()))
        rateGauge = Gauge(label: "outbound_sender_rate", dimensions: [("sender", label)])
        unusedSlots = Counter(label: "outbound_send_slots_unused_total", dimensions: [("sender", label)])
        rateGauge.record(max(limit, 0.001) * Self.headroom)
    }

    /// The rate paced at now, messages per second.
    public var rate: Double { state.withLock { $0.rate } }

    /// Counts the changes of limit or store (`configure`) and the pacer's retirement: while it reads
    /// the same, no one has configured this pacer otherwise since and it is still the sender's (a
    /// step may keep the pacer it configured until then).
    public var generation: UInt64 { generationCounter.load(ordering: .acquiring) }
    private let generationCounter = Atomic<UInt64>(0)

    /// Applies a reloaded limit or store; returns the generation that has them.
    func configure(limit: Double, store: (any SlotStore)?) -> UInt64 {
        let (changed, generation) = state.withLock { state -> (Bool, UInt64) in
            let sameStore = (state.store as AnyObject?) === (store as AnyObject?)
            guard state.limit != limit || !sameStore else { return (false, generationCounter.load(ordering: .acquiring)) }
            state.limit = max(limit, 0.001)
            state.store = store
            state.unused += state.slots.count
            state.slots.removeAll()
            state.storeFullUntil = nil
            return (true, generationCounter.add(1, ordering: .acquiringAndReleasing).newValue)
        }
        if changed { rateGauge.record(rate) }
        return generation
    }

    /// Lets the pacer go if no message has asked it for a turn (nor a send's answer slowed it down
    /// or sped it up) since `cutoff` and none has a place in its line or waits for a fetch: its
    /// metric series are removed and its generation changes.
    func retire(unusedSince cutoff: Date) -> Bool {
        let unused = state.withLock { state -> Int? in
            state.forget(before: clock.now())
            guard !state.retired, state.lastUsed < cutoff, state.places.isEmpty, !state.fetching, state.waiters.isEmpty else { return nil }
            state.retired = true
            generationCounter.add(1, ordering: .acquiringAndReleasing)
            defer { state.unused = 0 }
            return state.unused
        }
        guard let unused else { return false }
        if unused > 0 { unusedSlots.increment(by: unused) }
        rateGauge.destroy()
        unusedSlots.destroy()
        return true
    }

    /// The place in line of a message of `lane` that entered the system at `order` (now when
    /// unknown): the one it had when it carries its `id`, else a new one.
    public func ticket(lane: Lane?, order: Date?, id: UInt64? = nil) -> Ticket {
        Ticket(id: id ?? Self.nextTicketID.add(1, ordering: .relaxed).newValue, rank: lane?.rank ?? 0, askDelay: lane.map { min(Self.lastAsk, Double($0.rank) / 2) } ?? Self.lastAsk, maxShare: lane?.maxShare ?? 1, order: order ?? clock.now())
    }

    /// The message leaves the worker before its turn (through the source, or to wait for something
    /// else): its place does not hold the line until it asks again, or is forgotten.
    public func away(_ ticket: Ticket) {
        state.withLock { $0.places[ticket.id]?.present = false }
    }

    /// The message's turn, or when to ask again.
    public func take(_ ticket: Ticket) async -> Turn {
        while true {
            var unused = 0
            let next: Next = state.withLock { state in
                let now = clock.now()
                // Let go while the message looked it up: the sender's new pacer gives the turn.
                if state.retired { return .turn(.wait(until: now)) }
                state.lastUsed = now
                state.forget(before: now)
                (unused, state.unused) = (state.unused, 0)
                state.places[ticket.id] = Place(ticket: ticket, due: now)
                guard state.first()?.id == ticket.id else {
                    // A slot held here for its place (the places ahead have theirs before it) is its now:
                    // waiting for the turn only to come back for that very slot would cost a wake-up a
                    // message, and at a high rate the wake-ups, not the limit, would set the pace.
                    let ahead = state.slotsAhead(of: ticket)
                    if ahead < state.slots.count { return .turn(.go(state.handOut(ticket, state.slots.remove(at: ahead), now: now))) }
                    // A slot due now whose place is not here to take it (its message sleeps until a later turn)
                    // would expire in a moment, capacity no worker uses: it goes to the message that asks.
                    if let due = state.slots.first, due <= now, state.isUnclaimed(due, by: ticket, now: now) {
                        return .turn(.go(state.handOut(ticket, state.slots.removeFirst(), now: now)))
                    }
                    // While slots are being fetched, the line waits for them: its turns are known after.
                    if state.fetching { return .waitForFetch }
                    // The store has room and only messages here are ahead: slots for them and this one now,
                    // not a wait for a turn that needs none (far below the limit, such waits, not the limit,
                    // would set the pace). A lane's share ahead (and, in a capped lane, places away): their turns
                    // come first; so do messages here not due back soon (a fetch would not reach this one's place).
                    if state.storeFullUntil.map({ $0 <= now }) ?? true, ahead < state.dueSoon(now: now),
                       let next = state.askStore(for: ticket, now: now) { return next }
                    let due = state.expectedTurn(of: ticket, now: now)
                    state.places[ticket.id]?.due = due
                    return .turn(.wait(until: due))
                }
                if !state.slots.isEmpty { return .turn(.go(state.handOut(ticket, state.slots.removeFirst(), now: now))) }
                if let next = state.askStore(for: ticket, now: now) { return next }
                let slot = max(state.localNext ?? now, now)
                // Its turn comes when its slot does (a microsecond's leeway for a clock that a wait reached).
                if slot.timeIntervalSince(now) > 1e-6 {
                    state.places[ticket.id]?.due = slot
                    return .turn(.wait(until: slot))
                }
                state.localNext = slot.addingTimeInterval(state.interval)
                return .turn(.go(state.handOut(ticket, slot, now: now)))
            }
            if unused > 0 { unusedSlots.increment(by: unused) }
            switch next {
            case .turn(let turn):
                return turn
            case .waitForFetch:
                await withCheckedContinuation { continuation in
                    let resumeNow = state.withLock { state -> Bool in
                        guard state.fetching else { return true }
                        state.waiters.append(continuation)
                        return false
                    }
                    if resumeNow { continuation.resume() }
                }
            case .fetch(let store, let count, let spare, let interval):
                await fetch(from: store, count: count, spare: spare, interval: interval)
            }
        }
    }

    private func fetch(from store: any SlotStore, count: Int, spare: Int, interval: TimeInterval) async {
        let result: Result<SlotGrant, any Error>
        do {
            result = .success(try await store.takeSlots(key: key, interval: .nanoseconds(Int64(interval * 1e9)), count: count, spare: spare,
                                                        within: .nanoseconds(Int64(Self.horizon * 1e9))))
        } catch {
            result = .failure(error)
        }
        let now = clock.now()
        let (waiters, recovered, failedFirst) = state.withLock { state -> ([CheckedContinuation<Void, Never>], Bool, Bool) in
            var recovered = false
            var failedFirst = false
            switch result {
            case .success(let grant):
                recovered = state.storeRetryAt != nil
                state.storeRetryAt = nil
                let start = now.addingTimeInterval(grant.first.secondsDouble)
                if grant.count == 0 {
                    state.storeFullUntil = start
                } else {
                    state.storeFullUntil = nil
                    let granted = (0..<grant.count).map { start.addingTimeInterval(Double($0) * interval) }
                    state.slots = (state.slots + granted).sorted()
                }
            case .failure:
                failedFirst = state.storeRetryAt == nil
                state.storeRetryAt = now.addingTimeInterval(1)
                state.storeFullUntil = nil
                // Slots the store granted may lie ahead: pacing alone goes on after them, not at once.
                if let last = state.slots.last ?? state.lastSlot { state.localNext = max(state.localNext ?? last, last.addingTimeInterval(interval)) }
            }
            state.fetching = false
            defer { state.waiters.removeAll() }
            return (state.waiters, recovered, failedFirst)
        }
        if recovered { logger.notice("send slots shared through the store again", metadata: ["pacer": .string(key)]) }
        if failedFirst, case .failure(let error) = result {
            logger.warning("send slot store unavailable; pacing this worker alone meanwhile", metadata: ["pacer": .string(key), "error": "\(error)"])
        }
        waiters.forEach { $0.resume() }
    }

    /// A slot handed out here went to no one: its message came more than `staleness` after it, and
    /// takes a new turn (`outbound_send_slots_unused_total`, with the slots that expired here).
    public func slotWentUnused() {
        unusedSlots.increment()
    }

    /// The other side said the limit was exceeded. The first time after `calmAfter` without it,
    /// 10 % slower: paced at 95 % of the limit, a lone 130429 is sends bunched by network or
    /// scheduling delays (several workers' sends up to `staleness` late), and halving for it cost a
    /// backlogged sender a fifth of a campaign's time. Another within `calmAfter` — even within the
    /// second after a lone one — halves the rate: the limit is lower than configured, found in a
    /// few seconds. Halvings come at most once a second (requests already under way at the old
    /// rate are answered 130429 too).
    public func slowDown() {
        let now = clock.now()
        let slowed = state.withLock { state -> Bool in
            state.lastUsed = now
            let since = state.lastSlowdown.map { now.timeIntervalSince($0) } ?? .infinity
            let factor: Double
            if since >= Self.calmAfter {
                factor = 0.9
            } else if since < 1 {
                // Within the second: only a lone slowdown turns into a halving (0.9 × 5/9 = ½).
                guard state.lastSlowdownWasLone else { return false }
                factor = 0.5 / 0.9
            } else {
                factor = 0.5
            }
            state.lastSlowdownWasLone = since >= Self.calmAfter
            state.lastSlowdown = now
            state.multiplier = max(0.05, state.multiplier * factor)
            state.unused += state.slots.count
            state.slots.removeAll()
            if let local = state.localNext { state.localNext = max(local, now.addingTimeInterval(state.interval)) }
            return true
        }
        if slowed {
            rateGauge.record(rate)
            logger.warning("sender over its limit: pacing slower", metadata: ["pacer": .string(key), "rate": "\(Int(rate.rounded()))/s"])
        }
    }

    /// A send succeeded: win back 5 % of the limit per second of successes.
    public func speedUp() {
        let now = clock.now()
        let rate: Double? = state.withLock { state in
            state.lastUsed = now
            guard state.multiplier < 1 else { return nil }
            state.multiplier = min(1, state.multiplier + 0.05 / max(1, state.rate))
            return state.rate
        }
        if let rate { rateGauge.record(rate) }
    }
}
