import Foundation
import RedisClient
import Testing
import TestSupport

/// After an outage, the pool's connections wait out growing reconnect backoffs (up to 2 s each):
/// once one of them is through, the others follow at once instead of failing their commands
/// until their own backoff ends — a Redis back up is back for every command.
@Suite(.serialized) struct PoolRecoveryTests {
    @Test func onceOneConnectionIsBackEveryCommandGoesThrough() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        let client = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: redis.port, commandTimeout: .milliseconds(200), poolSize: 4))
        #expect(try await client.checked(["PING"]).string == "PONG")
        try await redis.stop()
        // Each connection fails a few times over 1.5 s: its backoff grows to hundreds of milliseconds.
        let outageEnds = ContinuousClock.now + .milliseconds(1500)
        while ContinuousClock.now < outageEnds {
            for _ in 0..<4 { _ = try? await client.send(["PING"]) }
            try await Task.sleep(for: .milliseconds(100))
        }
        try await redis.start()
        try await poll("one connection back") { (try? await client.send(["PING"])) == .status("PONG") }
        var failed = 0
        for _ in 0..<8 where (try? await client.send(["PING"])) != .status("PONG") { failed += 1 }
        #expect(failed == 0, "\(failed) of 8 commands failed after the server was back")
        try await redis.stop()
    }

    /// A host that names a replica (a DNS name still on the demoted master after a failover, or a
    /// mistake) answered every write READONLY, and the connection was dropped and opened again for
    /// every batch: a new connection, AUTH and SELECT each, thousands of sockets in TIME_WAIT (audit).
    @Test func aHostThatNamesAReplicaIsNotConnectedToForEveryCommand() async throws {
        let master = try ScratchRedis()
        try await master.start()
        defer { Task { try? await master.stop() } }
        let replica = try ScratchRedis(replicaOf: master.port)
        try await replica.start()
        defer { Task { try? await replica.stop() } }
        func connectionsReceived() throws -> Int {
            let line = try replica.cli(["info", "stats"]).split(whereSeparator: \.isNewline).first { $0.hasPrefix("total_connections_received:") }
            return line.flatMap { Int($0.split(separator: ":").last ?? "") } ?? -1
        }
        let client = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: replica.port, poolSize: 1))
        let before = try connectionsReceived()
        var refused = 0
        for index in 0..<200 where (try? await client.checked(["SET", "replica-\(index)", "x"])) == nil { refused += 1 }
        let opened = try connectionsReceived() - before - 1  // (the count's own redis-cli)
        #expect(refused == 200, "a replica takes no write")
        #expect((0...10).contains(opened), "\(opened) connections for 200 writes")
    }
}
