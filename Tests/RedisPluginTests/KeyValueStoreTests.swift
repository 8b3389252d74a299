import Foundation
import Logging
import PipelineKit
import RedisClient
import RedisPlugin
import Testing
import TestSupport

/// The key-value capability behaves alike on the real redis-server of `scripts/test` and on the
/// in-memory twin: the same cases run against both.
struct KeyValueStoreTests {
    typealias Kind = StoreKind

    static func store(_ kind: Kind) throws -> any KeyValueStore {
        try #require(kind.store(as: (any KeyValueStore).self))
    }

    @Test(arguments: Kind.allCases) func keysAreDeletedAndFoundByPrefix(_ kind: Kind) async throws {
        let store = try Self.store(kind)
        let prefix = uniqueName("kv-scan") + ":*?["
        try await store.set(prefix + "a", "1", ttl: .seconds(60))
        try await store.set(prefix + "b", "2", ttl: .seconds(60))
        try await store.set(prefix.dropLast(3) + "other", "3", ttl: .seconds(60))
        #expect(try await store.keys(prefix: prefix) == [prefix + "a", prefix + "b"], "a prefix with glob characters matches itself only")
        #expect(try await store.delete(prefix + "a"))
        #expect(try await store.delete(prefix + "a") == false)
        #expect(try await store.keys(prefix: prefix) == [prefix + "b"])
        #expect(try await store.read(prefix + "b")?.value == "2")
    }

    @Test(arguments: Kind.allCases) func setsAddRemoveAndAnswerMembership(_ kind: Kind) async throws {
        let store = try Self.store(kind)
        let (a, b) = (uniqueName("kv-set-a"), uniqueName("kv-set-b"))
        #expect(try await store.addMembers(["+1", "+2"], to: a) == 2)
        #expect(try await store.addMembers(["+2", "+3"], to: a) == 1)
        #expect(try await store.isMember("+2", ofEach: [a, b]) == [true, false])
        #expect(try await store.isMember("+3", of: a))
        #expect(try await store.holdsAny(of: ["+9", "+3"], ofEach: [a, b]) == [true, false])
        #expect(try await store.holdsAny(of: ["+8", "+9"], ofEach: [a, b]) == [false, false])
        #expect(try await store.members(of: a) == ["+1", "+2", "+3"])
        #expect(try await store.removeMembers(["+1", "+9"], from: a) == 1)
        #expect(try await store.members(of: a) == ["+2", "+3"])
        #expect(try await store.members(of: b).isEmpty)
        #expect(try await store.removeMembers(["+2", "+3"], from: a) == 2)
        #expect(try await store.isMember("+2", ofEach: [a]) == [false])
    }

    @Test(arguments: Kind.allCases) func aLongListIsReadWhole(_ kind: Kind) async throws {
        let store = try Self.store(kind)
        let key = uniqueName("kv-long")
        let numbers = (0..<2_500).map { "+55\(10_000_000 + $0)" }
        #expect(try await store.addMembers(numbers, to: key) == 2_500)
        #expect(try await store.members(of: key) == numbers.sorted())
    }

    @Test(arguments: Kind.allCases) func stringsExpire(_ kind: Kind) async throws {
        let store = try Self.store(kind)
        let key = uniqueName("kv-string")
        #expect(try await store.read(key) == nil)
        try await store.set(key, "v", ttl: .seconds(100))
        let read = try #require(try await store.read(key))
        #expect(read.value == "v")
        #expect(try #require(read.ttl) <= .seconds(100))
        #expect(try #require(read.ttl) >= .seconds(98))
    }

    @Test func aStoreThatIsDownSaysSo() async {
        let memory = MemoryStore(clock: SystemWallClock())
        memory.setAvailable(false)
        await #expect(throws: StoreUnavailable.self) { try await memory.isMember("+1", ofEach: ["k"]) }
        var logger = Logger(label: "test.redis")
        logger.logLevel = .critical
        let closed = RedisStore(client: RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: freePort(), connectTimeout: .milliseconds(200))), logger: logger)
        await #expect(throws: StoreUnavailable.self) { try await closed.addMembers(["+1"], to: "k") }
    }
}
