import Foundation
import PipelineKit
import Testing
import TestSupport

/// Holds shared by every worker (SPEC 8, 17) on the real redis-server, the Redis Cluster and the
/// in-memory twin alike: one escalation per outage whichever worker meets it, judged by the store's clock.
struct HoldStoreTests {
    static let policy = EscalationPolicy(first: .milliseconds(300), factor: 4, cap: .milliseconds(4800))

    @Test(arguments: StoreKind.allCases) func aHoldGrowsPerOutageNotPerFailureAndASuccessResetsIt(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any HoldStore).self))
        let (group, key) = (uniqueName("sender"), "pair:x:+1")
        let first = try await store.hold(key, group: group, policy: Self.policy, kind: .pairHold, startedAgo: .zero)
        #expect(first.count == 0 && first.remaining > .milliseconds(250) && first.remaining <= .milliseconds(300), "\(first)")
        let meanwhile = try await store.hold(key, group: group, policy: Self.policy, kind: .pairHold, startedAgo: .zero)
        #expect(meanwhile.count == 0 && meanwhile.remaining <= first.remaining, "a failure while held leaves the hold as it is: \(meanwhile)")
        try await poll("the first hold over", timeout: .seconds(5)) {
            try await store.holds(group: group, since: nil).holds.first.map { $0.remaining <= .zero } == true
        }
        let slow = try await store.hold(key, group: group, policy: Self.policy, kind: .pairHold, startedAgo: .seconds(5))
        #expect(slow.count == 0 && slow.remaining <= .zero, "an answer to a request begun before the hold says nothing of since: \(slow)")
        let probe = try await store.hold(key, group: group, policy: Self.policy, kind: .pairHold, startedAgo: .zero)
        #expect(probe.count == 1 && probe.remaining > .milliseconds(1100) && probe.remaining <= .milliseconds(1200), "the probe failed: 4 × longer: \(probe)")
        #expect(try await !store.clear(key, group: group, startedAgo: .seconds(5)))
        #expect(try await store.holds(group: group, since: nil).holds.map(\.count) == [1], "a success of a request begun before the hold leaves it")
        #expect(try await store.clear(key, group: group, startedAgo: .zero))
        #expect(try await store.holds(group: group, since: nil).holds.isEmpty)
        let again = try await store.hold(key, group: group, policy: Self.policy, kind: .pairHold, startedAgo: nil)
        #expect(again.count == 0, "cleared: the next outage starts over: \(again)")
    }

    @Test(arguments: StoreKind.allCases) func aReadFindsTheHoldsWrittenSinceTheLastOne(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any HoldStore).self))
        let group = uniqueName("sender")
        #expect(try await store.changes()[group] == nil)
        let empty = try await store.holds(group: group, since: nil)
        #expect(empty.holds.isEmpty)
        let written = try await store.hold("pair:x:+1", group: group, policy: Self.policy, kind: .pairHold, startedAgo: nil)
        let change = try #require(written.change, "a hold written comes with the group's change")
        try await store.announce(group: group, change: change)
        #expect(try await store.changes()[group] == change, "the group's change is named")
        let first = try await store.holds(group: group, since: empty)
        #expect(first.holds.map(\.key) == ["pair:x:+1"] && first.holds.first?.kind == .pairHold, "\(first)")
        #expect(try await store.hold("pair:x:+1", group: group, policy: Self.policy, kind: .pairHold, startedAgo: nil).change == nil,
                "a failure while held writes nothing")
        #expect(try await store.holds(group: group, since: first).holds.isEmpty, "nothing written since the last read")
        let spam = try await store.hold("spam:x", group: group, policy: Self.policy, kind: .spamLimit, startedAgo: nil)
        #expect(spam.change != nil && spam.change != change, "a new hold, a new change")
        let second = try await store.holds(group: group, since: first)
        #expect(second.holds.map(\.key) == ["spam:x"] && second.holds.first?.kind == .spamLimit, "only what was written since: \(second)")
        #expect(try await store.holds(group: group, since: nil).holds.count == 2, "a first read finds them all")
        #expect(try await store.holds(group: uniqueName("sender"), since: nil).holds.isEmpty, "another sender holds nothing")
    }

    /// A group's change is kept as long as the group's holds live: a pair hold written after a
    /// sender's hour-long marketing hold does not shorten it (review: the change took the pair's
    /// 13 min, and a map of many senders dropped the sender while its marketing was still held).
    @Test(arguments: StoreKind.allCases) func aChangeIsKeptAsLongAsTheGroupsLongestHold(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any HoldStore).self))
        let group = uniqueName("sender")
        func keep(_ hold: SharedHold) -> Int64? { hold.change?.split(separator: ":").last.flatMap { Int64($0) } }
        let spam = try await store.hold("spam:x", group: group, policy: EscalationPolicy(first: .seconds(60), factor: 2, cap: .seconds(3600)),
                                        kind: .spamLimit, startedAgo: nil)
        let pair = try await store.hold("pair:x:+1", group: group, policy: EscalationPolicy(first: .seconds(1), factor: 4, cap: .seconds(256)),
                                        kind: .pairHold, startedAgo: nil)
        let (spamKeep, pairKeep) = (try #require(keep(spam)), try #require(keep(pair)))
        #expect(spamKeep >= 7_259_000 && pairKeep >= spamKeep - 1000, "the pair's change kept as long as the spam hold's: \(pairKeep) vs \(spamKeep)")
    }

    /// Announces that land out of order keep the sender named as long as the longer of the two
    /// (review: a pair's 13 min announced after an hour-long marketing hold's cut it short).
    @Test(arguments: StoreKind.allCases) func aLateAnnounceKeepsTheLongerReach(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any HoldStore).self))
        let group = uniqueName("sender")
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try await store.announce(group: group, change: "2:\(now):7200000")
        try await store.announce(group: group, change: "1:\(now - 5):780000")
        let parts = try #require(try await store.changes()[group]).split(separator: ":").compactMap { Int64($0) }
        #expect(parts.count == 3 && parts[0] == 1 && parts[1] + parts[2] == now + 7_200_000, "the last announced, reaching as far as the longer: \(parts)")
    }

    /// A group's holds that expired and were begun again are read whole, however many were written
    /// since (review: its write sequence restarted, and a read that had seen more than the new writes skipped them).
    @Test(arguments: StoreKind.allCases) func aGroupBegunAgainIsReadWhole(_ kind: StoreKind) async throws {
        let store = try #require(kind.store(as: (any HoldStore).self))
        let group = uniqueName("sender")
        let brief = EscalationPolicy(first: .milliseconds(50), factor: 1, cap: .milliseconds(50))
        for key in ["pair:x:+1", "pair:x:+2"] { _ = try await store.hold(key, group: group, policy: brief, kind: .pairHold, startedAgo: nil) }
        let before = try await store.holds(group: group, since: nil)
        #expect(before.at == 2)
        try await poll("the group's holds forgotten and expired", timeout: .seconds(5)) {
            try await store.holds(group: group, since: nil).at == 0
        }
        _ = try await store.hold("pair:x:+3", group: group, policy: brief, kind: .pairHold, startedAgo: nil)
        _ = try await store.hold("pair:x:+4", group: group, policy: brief, kind: .pairHold, startedAgo: nil)
        let after = try await store.holds(group: group, since: before)
        #expect(after.holds.map(\.key).sorted() == ["pair:x:+3", "pair:x:+4"], "both holds of the new beginning: \(after)")
    }
}
