import Foundation
import Logging
import PipelineKit
import RedisClient
import RedisPlugin
import Testing
import TestSupport

/// The Redis Cluster routing of `RedisClient` (SPEC 17) against the three masters and three
/// replicas of `scripts/services`' cluster profile: slots as the cluster computes them, commands
/// on the master of their slot, `ASK` and `MOVED` followed while a slot migrates, and a killed
/// master followed to the replica that took over, without a new client.
@Suite(.serialized) struct ClusterRoutingTests {
    static func client() -> RedisClient {
        RedisClient(configuration: RedisConfiguration(commandTimeout: .milliseconds(500), cluster: TestServices.redisCluster))
    }

    static func cli(_ port: Int, _ arguments: [String]) throws -> String {
        try ClusterNodes.cli(port, arguments)
    }

    static func masters() throws -> [(port: Int, id: String)] {
        try ClusterNodes.masters()
    }

    @Test func slotsAreTheClustersOwn() throws {
        let seed = try #require(TestServices.redisCluster.first)
        for key in ["foo", "{user1000}.following", "wamids:{17}", "a{}b", "{}", "idempotency:outbound:order-1", "é{ü}", uniqueName("k")] {
            #expect(ClusterSlot.of(key) == Int(try Self.cli(seed.port, ["cluster", "keyslot", key])), "\(key)")
        }
        #expect(ClusterSlot.of("wamids:{17}") == ClusterSlot.of("statuses:{17}"), "a hash tag puts keys together")
    }

    @Test func aRefusedPasswordIsAnAuthenticationError() async throws {
        let client = RedisClient(configuration: RedisConfiguration(password: "wrong", cluster: TestServices.redisCluster))
        do {
            try await client.connect()
            Issue.record("connected with a wrong password")
        } catch {
            guard case .authentication = error else { Issue.record("not reported as refused credentials: \(error)"); return }
        }
    }

    @Test func eachKeyIsWrittenOnTheMasterOfItsSlot() async throws {
        let client = Self.client()
        try await client.connect()
        let prefix = uniqueName("spread")
        for number in 0..<300 { _ = try await client.checked(["SET", "\(prefix):\(number)", String(number), "EX", "60"]) }
        var holders: Set<Int> = []
        for master in try Self.masters() {
            let held = try Self.cli(master.port, ["--scan", "--pattern", "\(prefix):*"]).split(separator: "\n").count
            if held > 0 { holders.insert(master.port) }
        }
        #expect(holders.count == 3, "300 keys spread over the three masters: \(holders)")
        for number in [0, 150, 299] { #expect(try await client.checked(["GET", "\(prefix):\(number)"]).string == String(number)) }
        let script = RedisScript("return redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await client.evaluate(script, keys: ["\(prefix):counter"], arguments: ["5"]).integer == 5)
        #expect(try await client.evaluate(script, keys: ["\(prefix):counter"], arguments: ["2"]).integer == 7, "a script's key is routed too")
    }

    /// A slot moves between masters as `redis-cli --cluster reshard` moves it: while it migrates, a
    /// key the source no longer has is asked of the target (`ASK`); once moved, the client follows
    /// `MOVED` and keeps the new owner.
    @Test func aMigratingSlotIsFollowed() async throws {
        let client = Self.client()
        try await client.connect()
        let key = uniqueName("migrate")
        let slot = ClusterSlot.of(key)
        _ = try await client.checked(["SET", key, "before", "EX", "120"])
        let masters = try Self.masters()
        let owner = try #require(masters.first { master in
            (try? Self.cli(master.port, ["cluster", "countkeysinslot", String(slot)])).flatMap { Int($0) }.map { $0 > 0 } ?? false
        })
        let target = try #require(masters.first { $0.port != owner.port })
        _ = try Self.cli(target.port, ["cluster", "setslot", String(slot), "importing", owner.id])
        _ = try Self.cli(owner.port, ["cluster", "setslot", String(slot), "migrating", target.id])
        _ = try Self.cli(owner.port, ["migrate", "127.0.0.1", String(target.port), key, "0", "5000"])
        #expect(try await client.checked(["GET", key]).string == "before", "asked of the target while the slot migrates")
        let other = "\(key)-sibling{\(key)}"
        #expect(ClusterSlot.of(other) == slot)
        _ = try await client.checked(["SET", other, "new", "EX", "120"])
        #expect(try Self.cli(target.port, ["cluster", "countkeysinslot", String(slot)]) == "2", "a new key of the slot went to the target")
        for master in masters { _ = try Self.cli(master.port, ["cluster", "setslot", String(slot), "node", target.id]) }
        #expect(try await client.checked(["GET", other]).string == "new", "MOVED followed once the slot is the target's")
        #expect(try await client.checked(["SET", key, "after"]).string == "OK")
        #expect(try Self.cli(target.port, ["get", key]) == "after")
    }

    /// `kill -9` of a master: its slots fail (the steps' degradation policy applies) until its
    /// replica takes over, then the same client writes them again on the new master.
    @Test func aKilledMasterIsFollowedToItsReplica() async throws {
        // Every node up and every replica in sync (a node killed by an earlier test may have just rejoined).
        _ = try TestServices.cluster(["start", "redis"])
        let client = Self.client()
        try await client.connect()
        let prefix = uniqueName("failover")
        let keys = (0..<60).map { "\(prefix):\($0)" }
        for key in keys { _ = try await client.checked(["SET", key, "1", "EX", "120"]) }
        let victim = try #require(try Self.masters().first)
        defer { _ = try? TestServices.cluster(["start", "redis"]) }
        _ = try TestServices.cluster(["kill-cluster-master", String(victim.port)])
        let killed = ContinuousClock.now
        try await poll("every key writable again", timeout: .seconds(30)) {
            for key in keys { guard (try? await client.checked(["INCR", key])) != nil else { return false } }
            return true
        }
        print("redis cluster: master \(victim.port) killed; all 60 keys writable again after \(ContinuousClock.now - killed)")
        #expect(try Self.masters().allSatisfy { $0.port != victim.port }, "a replica took over")
        _ = try TestServices.cluster(["start", "redis"])
        try await poll("the killed node back, as a replica") { (try? Self.cli(victim.port, ["role"]))?.hasPrefix("slave") == true }
    }

    /// A master that does not answer leaves its slots' keys unreachable while the others answer;
    /// `/health` pinged one master only and said up (audit). Now every master is pinged.
    @Test func aMasterThatDoesNotAnswerShowsOnHealth() async throws {
        _ = try TestServices.cluster(["start", "redis"])
        let store = RedisStore(client: Self.client(), logger: Logger(label: "test.cluster-health"))
        try await store.client.connect()
        #expect(await store.health() == .up)
        // The master the map lists last (a keyless PING went to the first): its clients paused, its cluster bus not.
        let silent = try #require(store.client.masters().last)
        _ = try Self.cli(silent.port, ["client", "pause", "2000", "ALL"])
        let health = await store.health()
        _ = try? Self.cli(silent.port, ["client", "unpause"])
        guard case .down(let reason) = health else {
            Issue.record("health \(health) while master \(silent) does not answer")
            return
        }
        #expect(reason.contains("master \(silent)"), "\(reason)")
        try await poll("up again once it answers") { await store.health() == .up }
    }

    /// An idle worker (only `/health`'s PINGs) whose master was killed: the PING of the dead
    /// master refreshes the map, so once a replica took over `/health` is ok again — it kept
    /// pinging the dead master, down until a message happened to touch its slots.
    @Test func anIdleClientFollowsAFailoverOnHealth() async throws {
        _ = try TestServices.cluster(["start", "redis"])
        let store = RedisStore(client: Self.client(), logger: Logger(label: "test.cluster-health"))
        try await store.client.connect()
        #expect(await store.health() == .up)
        let victim = try #require(try Self.masters().first)
        defer { _ = try? TestServices.cluster(["start", "redis"]) }
        _ = try TestServices.cluster(["kill-cluster-master", String(victim.port)])
        try await poll("a replica took over", timeout: .seconds(30)) { (try? Self.masters())?.contains { $0.port == victim.port } == false }
        try await poll("health ok again, with no other command", timeout: .seconds(10)) { await store.health() == .up }
        _ = try TestServices.cluster(["start", "redis"])
        try await poll("the killed node back, as a replica") { (try? Self.cli(victim.port, ["role"]))?.hasPrefix("slave") == true }
    }
}
