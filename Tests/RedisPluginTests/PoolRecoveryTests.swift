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
}
