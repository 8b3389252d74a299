import Foundation
import RedisClient
import Testing
import TestSupport

/// Commands reach Redis byte for byte, on a single server and on the Redis Cluster: arguments
/// laid out in one buffer must keep their bounds (empty ones, NUL bytes, bytes that are not UTF-8).
@Suite struct RedisCommandTests {
    static let clients: [(String, RedisClient)] = [
        ("single", RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: TestServices.redisPort))),
        ("cluster", RedisClient(configuration: RedisConfiguration(cluster: TestServices.redisCluster))),
    ]

    /// Messages name an IPv6 server as settings write it (before: `::1:6379`, host and port run together).
    @Test func anAddressReadsAsSettingsWriteIt() {
        #expect(RedisAddress(host: "::1", port: 6379).description == "[::1]:6379")
        #expect(RedisAddress(host: "redis.internal", port: 6379).description == "redis.internal:6379")
    }

    @Test(arguments: [0, 1])
    func argumentsArriveWhole(_ which: Int) async throws {
        let (name, client) = Self.clients[which]
        let key = uniqueName("bytes")
        let values: [[UInt8]] = [[], [0], [0, 0, 1], [0xFF, 0xFE, 0x00, 0x80], Array("é\u{0}x".utf8), Array(repeating: 0x41, count: 70_000)]
        for value in values {
            #expect(try await client.send(bytes: [Array("SET".utf8), Array(key.utf8), value]) == .status("OK"), "\(name)")
            #expect(try await client.send(bytes: [Array("GET".utf8), Array(key.utf8)]) == .bulk(value), "\(name): \(value.prefix(8)) (\(value.count) bytes)")
            #expect(try await client.send(["STRLEN", key]) == .integer(value.count), "\(name)")
        }
        // Several arguments, some empty, in one command: each keeps its length.
        #expect(try await client.send(["HSET", key + ":h", "", "a", "b", "", "c\u{0}d", "e"]) == .integer(3), "\(name)")
        #expect(try await client.send(["HGET", key + ":h", ""]) == .bulk(Array("a".utf8)), "\(name)")
        #expect(try await client.send(["HGET", key + ":h", "b"]) == .bulk([]), "\(name)")
        #expect(try await client.send(["HGET", key + ":h", "c\u{0}d"]) == .bulk(Array("e".utf8)), "\(name)")
        _ = try await client.send(["DEL", key])
        _ = try await client.send(["DEL", key + ":h"])
    }

    /// An empty command gets no reply from Redis: sent in a pipeline, it would shift every reply
    /// after it to the wrong caller (before the fix it waited out the command timeout).
    @Test(arguments: [0, 1])
    func anEmptyCommandIsRefusedAndTheNextGetsItsOwnReply(_ which: Int) async throws {
        let (name, client) = Self.clients[which]
        let key = uniqueName("empty")
        #expect(try await client.send(["SET", key, "mine"]) == .status("OK"), "\(name)")
        async let empty: RedisReply = client.send(bytes: [])
        async let mine = client.send(["GET", key])
        do {
            let reply = try await empty
            Issue.record("\(name): an empty command was answered: \(reply)")
        } catch {
            guard case .server? = error as? RedisError else { Issue.record("\(name): not refused at once: \(error)"); return }
        }
        #expect(try await mine == .bulk(Array("mine".utf8)), "\(name)")
        _ = try await client.send(["DEL", key])
    }

    /// A script goes by the SHA1 computed where it is made — Redis's own — not looked up by its text
    /// for every call; a server that does not know it yet gets it by `EVAL` and knows it from then on.
    @Test(arguments: [0, 1])
    func aScriptGoesByItsSHA1(_ which: Int) async throws {
        let (name, client) = Self.clients[which]
        #expect(RedisScript("return 1").sha == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
        let key = uniqueName("script")
        let script = RedisScript("-- \(key)\nreturn redis.call('INCRBY', KEYS[1], ARGV[1])")
        #expect(try await client.evaluate(script, keys: [key], arguments: ["2"]) == .integer(2), "\(name): unknown to the server, run by EVAL")
        #expect(try await client.evaluate(script, keys: [key], arguments: ["3"]) == .integer(5), "\(name)")
        if !client.isCluster {
            #expect(try await client.send(["SCRIPT", "EXISTS", script.sha]) == .array([.integer(1)]), "kept by the server under that SHA1")
            #expect(try await client.send(["SCRIPT", "LOAD", script.source]).string == script.sha)
        }
        _ = try await client.send(["DEL", key])
    }
}
