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
}
