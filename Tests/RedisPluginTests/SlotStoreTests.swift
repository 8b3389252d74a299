import Foundation
import PipelineKit
import Testing
import TestSupport

/// Send slots (SPEC 8, 14) on the real redis-server and the in-memory twin alike: consecutive,
/// `interval` apart, and never one further than the horizon ahead of the store's now.
struct SlotStoreTests {
    @Test(arguments: StoreKind.allCases) func slotsAreGrantedOnlyWithinTheHorizon(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any SlotStore).self))
        let key = uniqueName("throughput")
        let (interval, horizon) = (Duration.milliseconds(300), Duration.seconds(1))
        let first = try await store.takeSlots(key: key, interval: interval, count: 10, within: horizon)
        // An idle key: slots at 0, 300, 600 and 900 ms fit within 1 s; the rest of the 10 asked for do not.
        #expect(first.count == 4, "\(first)")
        #expect(first.first <= .milliseconds(1))
        let full = try await store.takeSlots(key: key, interval: interval, count: 1, within: horizon)
        #expect(full.count == 0, "the horizon is full: nothing reserved")
        #expect(full.first > .zero && full.first <= .milliseconds(201), "until the next slot (at 1.2 s) fits: \(full.first)")
        // The horizon moves with the store's clock: once it reaches the next slot, that slot is granted.
        try await Task.sleep(for: full.first + .milliseconds(20))
        let next = try await store.takeSlots(key: key, interval: interval, count: 10, within: horizon)
        #expect(next.count >= 1, "a slot fits once the horizon moves on")
        #expect(next.first <= horizon + .microseconds(1), "granted within the horizon: \(next.first)")
    }

    /// A slot time an hour ahead of the store's clock — what a Redis whose clock stepped back an hour
    /// leaves, or a replica an hour behind once promoted — was waited for: every sender of the key
    /// stopped on every worker for the hour. No grant reaches beyond the horizon and an interval.
    @Test(arguments: StoreKind.allCases) func aSlotTimeFarAheadOfTheStoresClockIsNotWaitedFor(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any SlotStore & KeyValueStore).self))
        let key = uniqueName("throughput")
        let anHourAhead = Date().addingTimeInterval(3600).timeIntervalSince1970
        try await store.set(key, kind == .memory ? String(anHourAhead) : String(format: "%.0f", anHourAhead * 1e6), ttl: .seconds(7200))
        let (interval, horizon) = (Duration.milliseconds(100), Duration.seconds(1))
        let grant = try await store.takeSlots(key: key, interval: interval, count: 1, within: horizon)
        #expect(grant.first <= horizon + interval, "waited for \(grant.first)")
    }

    /// Spare slots (SPEC 8): granted only while the key's capacity is idle, judged in the same step
    /// as the grant — never once another worker's slots lie ahead.
    @Test(arguments: StoreKind.allCases) func spareSlotsOnlyWhileTheCapacityIsIdle(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any SlotStore).self))
        let key = uniqueName("throughput")
        let (interval, horizon) = (Duration.milliseconds(100), Duration.seconds(2))
        let idle = try await store.takeSlots(key: key, interval: interval, count: 2, spare: 3, within: horizon)
        #expect(idle.count == 5, "an idle key: the 2 asked for and the 3 spare: \(idle)")
        let busy = try await store.takeSlots(key: key, interval: interval, count: 2, spare: 3, within: horizon)
        #expect(busy.count == 2, "the next slot lies ahead (the 5 just taken): the 2 asked for only: \(busy)")
        #expect(busy.first > .zero, "after the 5 before: \(busy.first)")
    }

    /// Slots `interval` apart to the microsecond's fraction: 10,000 slots 10.5 µs apart end 105 ms on
    /// (whole microseconds made it 100: the store then handed other workers slots the pacer had
    /// spaced after its own — 5 % more than the limit at 100,000/s).
    @Test(arguments: StoreKind.allCases) func slotsAreSpacedByTheExactInterval(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any SlotStore).self))
        let key = uniqueName("throughput")
        let interval = Duration.nanoseconds(10_500)
        let clock = ContinuousClock()
        let started = clock.now
        let taken = try await store.takeSlots(key: key, interval: interval, count: 10_000, within: .seconds(1))
        let next = try await store.takeSlots(key: key, interval: interval, count: 1, within: .seconds(1))
        let elapsed = clock.now - started
        #expect(taken.count == 10_000, "\(taken)")
        #expect(next.first + elapsed >= .microseconds(104_990), "the next slot after 10,000 × 10.5 µs: \(next.first) + \(elapsed) since")
        #expect(next.first <= .microseconds(105_010), "not later either: \(next.first)")
    }
}
