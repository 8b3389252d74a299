import Foundation
import RedisClient
import Testing
import TestSupport

/// SPEC 11 on real servers: a three-node RabbitMQ cluster with quorum queues and a Redis master
/// with a replica behind three Sentinels (`scripts/services`' `cluster` profile, which
/// `scripts/test` starts). Each test kills a part with `kill -9` mid-stream and brings it back after.
@Suite(.serialized) struct HighAvailabilityTests {
    /// The worker's in-flight bound with the test variant (concurrency 16 + prefetch 64): a
    /// delivery the broker never heard acknowledged may come again, at most this many.
    static let inFlight = 80

    enum Victim: String, CaseIterable, CustomTestStringConvertible {
        case connectedNode = "the node the worker is connected to"
        case queueLeader = "the queue's leader (another node)"
        var testDescription: String { rawValue }
    }

    /// 3,000 messages on a quorum queue; a node is killed once 600 are sent. The worker goes on by
    /// itself: every id sent, duplicates within the in-flight count, nothing dead-lettered.
    @Test(arguments: Victim.allCases)
    func theWorkerSurvivesTheLossOfAClusterNode(_ victim: Victim) async throws {
        let nodes = TestServices.clusterURLs
        let e2e = try await EndToEndHarness(brokers: nodes)
        defer { Task { await e2e.cleanUp() } }
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "prefetch: 64", with: "prefetch: 64\n    queue_type: quorum"))
        let extra = ["WHATSAPP_THROUGHPUT": "100000"]
        if victim == .queueLeader {
            // The queue is declared through node 3, which then leads it; the worker consumes through node 1.
            let declaring = try await e2e.startWorker(extra: extra.merging(["RABBITMQ_URL": [nodes[2], nodes[0], nodes[1]].joined(separator: ",")]) { $1 })
            #expect(try await declaring.stop() == 0)
        }
        let worker = try await e2e.startWorker(extra: extra)
        defer { _ = try? TestServices.cluster(["start", "rabbitmq"]) }
        let total = 3000
        try await e2e.inspector.publish((0..<total).map(e2e.textMessage), to: e2e.queue, declare: false)
        try await poll("600 sent") { e2e.server.requests.count >= 600 }

        let connected = try Self.connectedNode(worker.log, nodes)
        let leader = Int(try TestServices.cluster(["leader", e2e.queue]).trimmingCharacters(in: .whitespacesAndNewlines)) ?? 0
        let target = victim == .connectedNode ? connected : leader
        if victim == .queueLeader { #expect(leader != connected, "the leader (node \(leader)) is not the node the worker uses (node \(connected))") }
        try TestServices.cluster(["kill-node", String(target)])

        try await poll("all \(total) ids sent", timeout: .seconds(120)) { e2e.requestsByRecipient.count == total }
        try await poll("the queues drained", timeout: .seconds(60)) {
            let ready = try await e2e.inspector.depth(e2e.queue)
            let retrying = try await e2e.inspector.depth("\(e2e.queue).retry.1")
            return ready == 0 && retrying == 0
        }
        let duplicates = e2e.server.requests.count - total
        #expect(duplicates <= Self.inFlight, "\(duplicates) duplicates, more than the \(Self.inFlight) in flight")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered")
        if victim == .connectedNode {
            let now = try Self.connectedNode(worker.log, nodes)
            #expect(now != target, "the worker moved to another node (now on node \(now))")
        }
        print("cluster, \(victim.rawValue) (node \(target)) killed: \(total) sent, \(duplicates) duplicates")
        #expect(try await worker.stop() == 0)
    }

    /// The master is killed mid-stream; Sentinel promotes the replica and the worker follows it
    /// without a restart. `fail_open`: nothing lost, and dedup works on the new master (messages
    /// published again are not sent again). `fail_closed`: nothing lost and nothing sent twice.
    @Test(arguments: ["fail_open", "fail_closed"])
    func theWorkerFollowsARedisFailover(_ degradation: String) async throws {
        let e2e = try await EndToEndHarness()
        defer { Task { await e2e.cleanUp() } }
        var variant = EndToEndHarness.variant.replacingOccurrences(of: "with: { lease: 3s }", with: "with: { lease: 3s }\n    degradation: \(degradation)")
        variant += "\n  - name: mark_completed\n    degradation: \(degradation)\n"
        try e2e.writeVariant(variant)
        let sentinel = [
            "REDIS_SENTINELS": TestServices.sentinels, "REDIS_MASTER_NAME": TestServices.sentinelMaster,
            "REDIS_SENTINEL_PASSWORD": TestServices.sentinelPassword, "WHATSAPP_THROUGHPUT": "250",
        ]
        let worker = try await e2e.startWorker(extra: sentinel)
        defer { _ = try? TestServices.cluster(["start", "redis"]) }
        let before = try Self.masterPort()
        let total = 1000
        try await e2e.publish((0..<total).map(e2e.textMessage))
        try await poll("300 sent") { e2e.server.requests.count >= 300 }
        let killedAt = ContinuousClock.now
        try TestServices.cluster(["kill-redis-master"])
        let skipped = DegradedWindow()
        let watcher = Task { await skipped.watch(worker) }
        try await poll("Sentinel promoted the replica", timeout: .seconds(30)) { (try? Self.masterPort()).map { $0 != before } ?? false }
        let promotedAfter = ContinuousClock.now - killedAt

        try await poll("all \(total) ids sent", timeout: .seconds(90)) { e2e.requestsByRecipient.count == total }
        try await e2e.waitUntilDrained()
        watcher.cancel()
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered")
        if degradation == "fail_closed" {
            #expect(e2e.requestsByRecipient.values.allSatisfy { $0 == 1 }, "nothing sent twice: \(e2e.server.requests.count) requests for \(total) ids")
            #expect(await skipped.seconds == nil, "fail_closed never skips deduplication")
        }

        // Dedup on the new master, without a restart: once the worker says Redis is healthy again, 50
        // more are sent, their keys completed on the new master; published again, none is sent again.
        try await poll("the worker healthy on the new master") { await worker.get("/health")?.body?["status"]?.stringValue == "ok" }
        try await e2e.publish((total..<(total + 50)).map(e2e.textMessage))
        try await poll("50 more sent") { e2e.requestsByRecipient.count == total + 50 }
        let master = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: try Self.masterPort()))
        var completed: [Int] = []
        // A pooled connection still in its reconnect backoff (at most 2 s) may skip a key or two.
        try await poll("keys written on the new master", timeout: .seconds(10)) {
            completed = []
            for number in total..<(total + 50) {
                let state = try await master.send(["GET", "idempotency:outbound:\(e2e.id(number))"]).string ?? ""
                if state.contains(#""status":"completed""#) { completed.append(number) }
            }
            return completed.count >= 45
        }
        let sent = e2e.server.requests.count
        let duplicates = await metricTotal(worker, "outbound_duplicates_total")
        try await e2e.publish(completed.map(e2e.textMessage))
        try await poll("the \(completed.count) handled again") {
            let skipped = await metricTotal(worker, "outbound_duplicates_total") - duplicates
            return Int(skipped) + e2e.server.requests.count - sent >= completed.count
        }
        #expect(e2e.server.requests.count == sent, "duplicates skipped on the new master: \(e2e.server.requests.count - sent) sent again")
        print("sentinel, \(degradation): master \(before) killed, replica promoted after \(promotedAfter), dedup skipped for \(await skipped.seconds.map { String(format: "%.1f s", $0) } ?? "0 s"), \(e2e.server.requests.count - sent) resent")
        #expect(try await worker.stop() == 0)
    }

    /// SPEC 17: the worker on a Redis Cluster of three masters (`REDIS_CLUSTER`), paced at 200/s
    /// against a stand-in enforcing it. 2,000 messages and 500 copies of them: exactly 2,000 sends,
    /// their keys on every master. Then `kill -9` of a master in the middle of 1,000 more: the worker
    /// follows the replica that takes over, without a restart — every id sent, duplicates within the
    /// in-flight bound, nothing dead-lettered, and the sender never above its limit.
    @Test func theWorkerRunsOnARedisClusterAndFollowsAKilledMaster() async throws {
        // Every node up and every replica in sync (a node killed by an earlier test may have just rejoined).
        _ = try TestServices.cluster(["start", "redis"])
        let e2e = try await EndToEndHarness()
        defer { Task { await e2e.cleanUp() } }
        e2e.server.enforceThroughput(perSecond: 200)
        let seeds = TestServices.redisCluster.map(\.description).joined(separator: ",")
        let worker = try await e2e.startWorker(extra: ["REDIS_CLUSTER": seeds, "WHATSAPP_THROUGHPUT": "200"])
        defer { _ = try? TestServices.cluster(["start", "redis"]) }
        try await e2e.publish((0..<2000).map(e2e.textMessage) + (0..<500).map { e2e.textMessage($0 * 4) })
        try await e2e.waitUntilFinished(2500, by: [worker], timeout: .seconds(90))
        #expect(e2e.server.sentByRecipient.count == 2000 && e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 },
                "2,000 ids, each sent once: \(e2e.server.sentByRecipient.count) ids, \(e2e.server.requests.filter(\.succeeded).count) sends")
        var holders: [Int: Int] = [:]
        for master in try ClusterNodes.masters() {
            holders[master.port] = try ClusterNodes.cli(master.port, ["--scan", "--pattern", "idempotency:outbound:\(e2e.prefix)-*"]).split(separator: "\n").count
        }
        #expect(holders.count == 3 && holders.values.allSatisfy { $0 > 400 } && holders.values.reduce(0, +) == 2000, "keys over the three masters: \(holders)")

        try await e2e.publish((2000..<3000).map(e2e.textMessage))
        try await poll("2,300 sent") { e2e.server.sentByRecipient.count >= 2300 }
        let victim = try #require(try ClusterNodes.masters().first)
        try TestServices.cluster(["kill-cluster-master", String(victim.port)])
        try await poll("all 3,000 ids sent", timeout: .seconds(90)) { e2e.server.sentByRecipient.count == 3000 }
        try await e2e.waitUntilDrained()
        let duplicates = e2e.server.requests.filter(\.succeeded).count - 3000
        print("redis cluster: master \(victim.port) killed mid-stream; \(duplicates) sent twice, busiest second \(e2e.server.mostInAnyWindow()), 130429: \(e2e.server.answered(130429))")
        #expect(duplicates <= Self.inFlight, "\(duplicates) duplicates, more than the \(Self.inFlight) in flight")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered")
        #expect(e2e.server.mostInAnyWindow() <= 200, "paced through the cluster: never above the limit in any second")
        #expect(try await worker.stop() == 0)
    }

    /// The node (1-based) of the last `consuming` line of the worker's log.
    static func connectedNode(_ log: String, _ nodes: [String]) throws -> Int {
        guard let line = log.split(separator: "\n").last(where: { $0.contains(#""consuming""#) }) else { throw TestFailure("the worker never said where it consumes") }
        for (index, node) in nodes.enumerated() {
            guard let port = node.split(separator: ":").last?.split(separator: "/").first else { continue }
            if line.contains("127.0.0.1:\(port)") { return index + 1 }
        }
        throw TestFailure("no cluster node in \(line)")
    }

    /// The master's port, as the Sentinels say.
    static func masterPort() throws -> Int {
        let sentinel = TestServices.sentinels.split(separator: ",")[0].split(separator: ":")
        let answer = try TestServices.run("redis-cli", ["-p", String(sentinel[1]), "-a", TestServices.sentinelPassword, "--no-auth-warning",
                                                        "sentinel", "get-master-addr-by-name", TestServices.sentinelMaster])
        guard let port = answer.output.split(separator: "\n").dropFirst().first.flatMap({ Int($0) }) else { throw TestFailure("no master: \(answer.output)") }
        return port
    }
}

/// How long the worker skipped deduplication: from the first to the last rise of
/// `outbound_degraded_total` (fail_open), read from its `/metrics` every 100 ms.
actor DegradedWindow {
    private var first: ContinuousClock.Instant?
    private var last: ContinuousClock.Instant?

    var seconds: Double? {
        guard let first, let last else { return nil }
        let span = last - first
        // One sampling interval more: the skips began up to 100 ms before the first rise was seen.
        return Double(span.components.seconds) + Double(span.components.attoseconds) / 1e18 + 0.1
    }

    func watch(_ worker: WorkerProcess) async {
        var previous = await metricTotal(worker, "outbound_degraded_total")
        while !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(100))
            let now = await metricTotal(worker, "outbound_degraded_total")
            if now > previous {
                if first == nil { first = .now }
                last = .now
            }
            previous = now
        }
    }
}

/// The sum of a counter's series in the worker's `/metrics`.
func metricTotal(_ worker: WorkerProcess, _ name: String) async -> Double {
    let text = await worker.text("/metrics") ?? ""
    return text.split(separator: "\n").filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
        .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
}
