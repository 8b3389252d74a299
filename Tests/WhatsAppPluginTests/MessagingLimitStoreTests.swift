import Foundation
import PipelineKit
import RedisPlugin
import Testing
import TestSupport
import WhatsAppPlugin

/// The messaging limit's window behaves alike on the real redis-server of `scripts/test` (its Lua
/// script, Redis's clock) and on the in-memory twin.
struct MessagingLimitStoreTests {
    typealias Kind = StoreKind

    static func store(_ kind: Kind) throws -> any MessagingLimitStore {
        try #require(kind.store(as: (any MessagingLimitStore).self))
    }

    /// A limit of 0 (a number Meta's webhook may carry) lets no new recipient in: the script did
    /// arithmetic on the oldest entry of an empty window and failed — every such message was
    /// requeued as if Redis were down — while the twin let the recipient in.
    @Test(arguments: Kind.allCases) func aLimitOfZeroLetsNoNewRecipientIn(_ kind: Kind) async throws {
        let store = try Self.store(kind)
        let key = uniqueName("msglimit")
        guard case .full(let until) = try await store.take(key, recipient: "+1", limit: 0, window: .seconds(3600)) else {
            Issue.record("full at once")
            return
        }
        #expect(until.timeIntervalSinceNow > 3500, "\(until)")
        #expect(MessagingLimits.allowed(of: 0) == 0, "and no share of it outside the urgent lane")
    }

    @Test(arguments: Kind.allCases) func uniqueRecipientsUseUnitsUpToTheLimitAndARefusalGivesItsUnitBack(_ kind: Kind) async throws {
        let store = try Self.store(kind)
        let key = uniqueName("msglimit")
        let window = Duration.seconds(3600)
        guard case .taken(let first) = try await store.take(key, recipient: "+1", limit: 2, window: window) else {
            Issue.record("a new recipient takes a unit")
            return
        }
        #expect(try await store.take(key, recipient: "+1", limit: 2, window: window) == .counted, "a recipient counted already costs nothing")
        guard case .taken(let second) = try await store.take(key, recipient: "+2", limit: 2, window: window) else {
            Issue.record("the second unit")
            return
        }
        guard case .full(let until) = try await store.take(key, recipient: "+3", limit: 2, window: window) else {
            Issue.record("a third recipient finds the window full")
            return
        }
        let expected = Date(timeIntervalSince1970: Double(first) / 1000 + 3600)
        #expect(abs(until.timeIntervalSince(expected)) < 1, "full until the oldest recipient leaves the window: \(until) vs \(expected)")
        #expect(try await store.counted(key, window: window) == 2)
        try await store.giveBack(key, recipient: "+2", takenAt: second - 1)
        #expect(try await store.counted(key, window: window) == 2, "a give-back for another send of that recipient changes nothing")
        try await store.giveBack(key, recipient: "+2", takenAt: second)
        #expect(try await store.counted(key, window: window) == 1)
        if case .taken = try await store.take(key, recipient: "+3", limit: 2, window: window) {} else { Issue.record("the unit given back is free") }
    }

    @Test(arguments: Kind.allCases) func aRecipientLeavesTheWindowWhenItEnds(_ kind: Kind) async throws {
        let store = try Self.store(kind)
        let key = uniqueName("msglimit")
        let window = Duration.milliseconds(300)
        _ = try await store.take(key, recipient: "+1", limit: 1, window: window)
        if case .full = try await store.take(key, recipient: "+2", limit: 1, window: window) {} else { Issue.record("full at the limit") }
        try await poll("the first recipient out of the window", timeout: .seconds(5)) {
            if case .taken = try await store.take(key, recipient: "+2", limit: 1, window: window) { return true }
            return false
        }
        #expect(try await store.counted(key, window: window) == 1)
    }
}
