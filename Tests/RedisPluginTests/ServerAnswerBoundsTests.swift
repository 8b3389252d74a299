import Testing
@testable import RedisClient

/// What a Redis server answers is input too: a `MOVED` or `CLUSTER SLOTS` naming a slot or port
/// that cannot be is no answer. Before, a slot of 20000 indexed past the slot map and a port of
/// 9999999999 trapped connecting: the worker ended.
@Suite struct ServerAnswerBoundsTests {
    let node = RedisAddress(host: "127.0.0.1", port: 7000)

    @Test func aRedirectionToNoSlotOrNoPortIsNone() {
        let moved = Redirection("MOVED 3999 10.0.0.1:7001", from: node)
        #expect(moved?.slot == 3999 && moved?.node == RedisAddress(host: "10.0.0.1", port: 7001) && moved?.moved == true)
        #expect(Redirection("MOVED 20000 10.0.0.1:7001", from: node) == nil)
        #expect(Redirection("ASK -1 10.0.0.1:7001", from: node) == nil)
        #expect(Redirection("MOVED 5 10.0.0.1:9999999999", from: node) == nil)
        #expect(Redirection("MOVED 5 10.0.0.1:0", from: node) == nil)
    }

    @Test func aSlotMapNamingNoPortIsNone() {
        func slots(port: Int) -> RedisReply {
            .array([.array([.integer(0), .integer(16383), .array([.bulk(Array("10.0.0.1".utf8)), .integer(port)])])])
        }
        #expect(ClusterSlotMap(slots(port: 7001), from: node)?.master(of: 42) == RedisAddress(host: "10.0.0.1", port: 7001))
        #expect(ClusterSlotMap(slots(port: 9_999_999_999), from: node) == nil)
    }
}
