import Logging
import PipelineKit
import RedisClient
import RedisPlugin
import Testing
import TestSupport

/// `/health`'s Redis check sees a Redis that answers PING but refuses the worker's commands.
@Suite struct RedisHealthTests {
    /// Out of memory (maxmemory reached, `noeviction`), Redis answered PING and refused every write:
    /// `/health` said up while `fail_open` steps sent without deduplication.
    @Test func aRedisThatRefusesWritesIsReportedDownUntilItTakesThemAgain() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        do {
            try await refusedWritesAreReported(redis)
        } catch {
            try? await redis.stop()
            throw error
        }
        try await redis.stop()
    }

    private func refusedWritesAreReported(_ redis: ScratchRedis) async throws {
        let store = RedisStore(client: RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: redis.port)),
                               refusalShown: .seconds(1), logger: Logger(label: "test.redis-health"))
        let write = { try await store.perform { () async throws(RedisError) in try await store.client.checked(["SET", uniqueName("health"), "v"]) } }
        _ = try await write()
        #expect(await store.health() == .up)

        _ = try redis.cli(["config", "set", "maxmemory", "1"])
        await #expect(throws: StoreUnavailable.self) { try await write() }
        let health = await store.health()
        guard case .down(let reason) = health else { Issue.record("redis reported \(health) while it refuses writes"); return }
        #expect(reason.contains("OOM"), "\(reason)")

        _ = try redis.cli(["config", "set", "maxmemory", "0"])
        _ = try await write()
        try await poll("up again once no command was refused for a while") { await store.health() == .up }
    }
}
