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
        try await store.clear(key, group: group, startedAgo: .seconds(5))
        #expect(try await store.holds(group: group, since: nil).holds.map(\.count) == [1], "a success of a request begun before the hold leaves it")
        try await store.clear(key, group: group, startedAgo: .zero)
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
        _ = try await store.hold("pair:x:+1", group: group, policy: Self.policy, kind: .pairHold, startedAgo: nil)
        let changed = try #require(try await store.changes()[group], "the group's change is named")
        let first = try await store.holds(group: group, since: empty.at)
        #expect(first.holds.map(\.key) == ["pair:x:+1"] && first.holds.first?.kind == .pairHold, "\(first)")
        _ = try await store.hold("pair:x:+1", group: group, policy: Self.policy, kind: .pairHold, startedAgo: nil)
        #expect(try await store.changes()[group] == changed, "a failure while held writes nothing")
        #expect(try await store.holds(group: group, since: first.at).holds.isEmpty, "nothing written since the last read")
        _ = try await store.hold("spam:x", group: group, policy: Self.policy, kind: .spamLimit, startedAgo: nil)
        #expect(try await store.changes()[group] != changed, "a new hold changes the group")
        let second = try await store.holds(group: group, since: first.at)
        #expect(second.holds.map(\.key) == ["spam:x"] && second.holds.first?.kind == .spamLimit, "only what was written since: \(second)")
        #expect(try await store.holds(group: group, since: nil).holds.count == 2, "a first read finds them all")
        #expect(try await store.holds(group: uniqueName("sender"), since: nil).holds.isEmpty, "another sender holds nothing")
    }
}
