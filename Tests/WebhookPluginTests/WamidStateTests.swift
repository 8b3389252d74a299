import Foundation
import IdempotencyPlugin
import Logging
import PipelineKit
import RedisClient
import RedisPlugin
import Testing
import TestSupport
import WebhookPlugin

/// The per-wamid state in its buckets (SPEC 17) against real redis-servers: the wamid mapping the
/// outbound pipeline writes and the statuses pipeline reads, the statuses published per wamid, the
/// layout before buckets still read, and what it costs.
@Suite(.serialized) struct WamidStateTests {
    static let logger: Logger = {
        var logger = Logger(label: "test.wamid-state")
        logger.logLevel = .critical
        return logger
    }()

    static func store(port: Int = TestServices.redisPort, buckets: Int = RedisSettings.defaultStateBuckets) -> RedisStore {
        RedisStore(client: RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: port)), buckets: buckets, logger: logger)
    }

    /// The single redis-server, or the Redis Cluster of the cluster profile (three masters).
    static func store(onCluster: Bool) -> RedisStore {
        onCluster ? RedisStore(client: RedisClient(configuration: RedisConfiguration(cluster: TestServices.redisCluster)), logger: logger) : store()
    }

    static func statuses(_ wamid: String, _ names: [String]) -> [(wamid: String, status: String, rank: Int)] {
        names.map { (wamid, $0, ["sent": 1, "delivered": 2, "read": 3, "played": 4][$0] ?? 0) }
    }

    @Test(arguments: [false, true]) func aCompletedSendsWamidMapsToItsInternalIDForTheKeysTTL(onCluster: Bool) async throws {
        let store = Self.store(onCluster: onCluster)
        let wamid = "wamid.\(UUID().uuidString)"
        let key = "\(uniqueName("map")):m1"
        _ = try await store.complete(key, claim: nil, value: #"{"status":"completed"}"#, ttl: .seconds(300), mapping: (wamid, MappedSend(internalID: "m1")))
        #expect(try await store.sends(of: [wamid, "wamid.unknown"]).mapValues(\.internalID) == [wamid: "m1"])
        let place = store.wamids.place(of: wamid)
        let stored = try #require(try await store.client.checked(["HGET", place.key, place.field]).string)
        let minute = try #require(stored.split(separator: ":").first.flatMap { Int($0) })
        let expires = Date(timeIntervalSince1970: Double(minute * 60)).timeIntervalSinceNow
        #expect(expires > 295 && expires <= 360, "kept for the key's TTL (to the minute): \(stored)")
        #expect(stored.hasSuffix(":m1"))
        #expect(try await store.client.checked(["EXISTS", "wamid:\(wamid)"]).integer == 0, "no key per wamid")
    }

    @Test func theMappingOfTheLayoutBeforeBucketsIsStillRead() async throws {
        let store = Self.store()
        let wamid = "wamid.\(UUID().uuidString)"
        _ = try await store.client.checked(["SET", "wamid:\(wamid)", "old-1", "EX", "60"])
        #expect(try await store.sends(of: [wamid]).mapValues(\.internalID) == [wamid: "old-1"])
    }

    @Test func anExpiredFieldIsNotReadAndIsPrunedAsItsBucketFills() async throws {
        let store = Self.store(buckets: 1)
        let gone = "wamid.\(UUID().uuidString)"
        let place = store.wamids.place(of: gone)
        _ = try await store.client.checked(["DEL", place.key])
        _ = try await store.client.checked(["HSET", place.key, place.field, "1:expired-id"])
        #expect(try await store.sends(of: [gone]).mapValues(\.internalID).isEmpty, "a field past its minute is not read")
        for number in 0..<40 {
            _ = try await store.complete("\(uniqueName("prune")):\(number)", claim: nil, value: "{}", ttl: .seconds(60), mapping: ("wamid.\(UUID().uuidString)", MappedSend(internalID: "id-\(number)")))
        }
        #expect(try await store.client.checked(["HEXISTS", place.key, place.field]).integer == 0, "pruned when the bucket was written")
        #expect(try await store.client.checked(["HLEN", place.key]).integer == 40)
        let ttl = try #require(try await store.client.checked(["TTL", place.key]).integer)
        #expect(ttl > 55 && ttl <= 120, "the bucket expires with its last field")
        _ = try await store.client.checked(["DEL", place.key])
    }

    @Test(arguments: [false, true]) func statusesArePublishedOnceAndOnlyForward(onCluster: Bool) async throws {
        let store = Self.store(onCluster: onCluster)
        let wamid = "wamid.\(UUID().uuidString)"
        #expect(try await store.check(Self.statuses(wamid, ["sent", "delivered", "sent"])) == [.publish, .publish, .duplicate])
        try await store.record(Self.statuses(wamid, ["sent", "read"]), ttl: .seconds(600))
        #expect(try await store.check(Self.statuses(wamid, ["sent", "delivered", "read", "played", "failed", "deleted"]))
                == [.duplicate, .outOfOrder, .duplicate, .publish, .publish, .publish])
        try await store.record(Self.statuses(wamid, ["failed", "deleted"]), ttl: .seconds(600))
        #expect(try await store.check(Self.statuses(wamid, ["failed", "deleted", "played"])) == [.duplicate, .duplicate, .publish])
        let place = store.statuses.place(of: wamid)
        let stored = try #require(try await store.client.checked(["HGET", place.key, place.field]).string)
        #expect(stored.split(separator: ":", maxSplits: 1).last == "21:deleted", "sent 1 + read 4 + failed 16, then other statuses by name")
    }

    /// A POST's statuses span many buckets: on a cluster, one script per slot, answers in order.
    @Test(arguments: [false, true]) func aBatchOfManyWamidsIsAnsweredInOrder(onCluster: Bool) async throws {
        let store = Self.store(onCluster: onCluster)
        let wamids = (0..<60).map { _ in "wamid.\(UUID().uuidString)" }
        let half = Array(wamids.prefix(30))
        try await store.record(half.flatMap { Self.statuses($0, ["delivered"]) }, ttl: .seconds(600))
        let offered = wamids.flatMap { Self.statuses($0, ["sent", "read"]) }
        let expected = wamids.flatMap { half.contains($0) ? [StatusAdmission.outOfOrder, .publish] : [.publish, .publish] }
        #expect(try await store.check(offered) == expected)
        for (number, wamid) in wamids.enumerated() {
            _ = try await store.complete("\(uniqueName("batch")):\(number)", claim: nil, value: "{}", ttl: .seconds(60), mapping: (wamid, MappedSend(internalID: "id-\(number)")))
        }
        let found = try await store.sends(of: wamids + ["wamid.none"]).mapValues(\.internalID)
        #expect(found == Dictionary(uniqueKeysWithValues: wamids.enumerated().map { ($1, "id-\($0)") }))
    }

    @Test func statusesOfTheLayoutBeforeBucketsCountAndMoveToABucket() async throws {
        let store = Self.store()
        let wamid = "wamid.\(UUID().uuidString)"
        _ = try await store.client.checked(["HSET", "status:\(wamid)", "s:sent", "1", "s:delivered", "1", "rank", "2"])
        _ = try await store.client.checked(["EXPIRE", "status:\(wamid)", "60"])
        #expect(try await store.check(Self.statuses(wamid, ["delivered", "sent", "read"])) == [.duplicate, .duplicate, .publish])
        try await store.record(Self.statuses(wamid, ["read"]), ttl: .seconds(600))
        _ = try await store.client.checked(["DEL", "status:\(wamid)"])
        #expect(try await store.check(Self.statuses(wamid, ["sent", "delivered", "read"])) == [.duplicate, .duplicate, .duplicate],
                "what the old layout held moved with the new status")
    }

    @Test(arguments: [false, true]) func aStatusSettlesItsSendAndMapsItsWamid(onCluster: Bool) async throws {
        let store = Self.store(onCluster: onCluster)
        let key = "\(uniqueName("settle")):s1"
        _ = try await store.client.checked(["SET", key, #"{"status":"in_doubt","owner":"w","since":"2026-12-04T10:00:00.000Z","attempt":1}"#, "EX", "300"])
        let wamid = "wamid.\(UUID().uuidString)"
        #expect(try await store.settle([SettledSend(key: key, wamid: wamid, internalID: "s1")], at: Date()) == 1)
        #expect(try await store.sends(of: [wamid]).mapValues(\.internalID) == [wamid: "s1"])
        #expect(try await store.client.checked(["GET", key]).string?.contains(#""status":"completed""#) == true)
    }

    /// A status that settles a traced send's key — still processing (it came before the worker's
    /// answer), in doubt (the answer was lost) or completed without a wamid (the answer could not be
    /// read) — maps its wamid with the trace the key held, so it
    /// and the statuses after it continue the send's trace; the mapping `mark_completed` writes
    /// later does not take it away.
    @Test(arguments: [false, true]) func aStatusSettlingATracedSendMapsItWithTheSendsTrace(onCluster: Bool) async throws {
        let store = Self.store(onCluster: onCluster)
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        let values = [#"{"status":"processing","owner":"w","since":"2026-12-04T10:00:00.000Z","trace":"\#(traceparent)"}"#,
                      #"{"status":"in_doubt","owner":"w","since":"2026-12-04T10:00:00.000Z","attempt":1,"trace":"\#(traceparent)"}"#,
                      #"{"status":"completed","wamid":null,"completed_at":"2026-12-04T10:00:00.000Z","trace":"\#(traceparent)"}"#,
                      #"{"status":"in_doubt","owner":"w","since":"2026-12-04T10:00:00.000Z","attempt":1,"trace":"not a traceparent"}"#]
        var sends: [SettledSend] = []
        for (index, value) in values.enumerated() {
            let key = "\(uniqueName("tracedsettle")):\(index)"
            _ = try await store.client.checked(["SET", key, value, "EX", "300"])
            sends.append(SettledSend(key: key, wamid: "wamid.\(UUID().uuidString)", internalID: "id\(index)"))
        }
        #expect(try await store.settle(sends, at: Date()) == 4)
        let found = try await store.sends(of: sends.map(\.wamid))
        #expect(sends.map { found[$0.wamid] } == [MappedSend(internalID: "id0", traceparent: traceparent), MappedSend(internalID: "id1", traceparent: traceparent),
                                                 MappedSend(internalID: "id2", traceparent: traceparent), MappedSend(internalID: "id3")])
        _ = try await store.complete(sends[0].key, claim: values[0], value: #"{"status":"completed","wamid":"\#(sends[0].wamid)"}"#, ttl: .seconds(300),
                                     mapping: (sends[0].wamid, MappedSend(internalID: "id0", traceparent: traceparent)))
        #expect(try await store.sends(of: [sends[0].wamid])[sends[0].wamid]?.traceparent == traceparent)
    }

    /// A mapping not written with the settlement (Redis failed in between) is written when Meta
    /// delivers the status again, though the key needs no settling any more.
    @Test(arguments: [false, true]) func metasRetryWritesAMappingTheSettlementMissed(onCluster: Bool) async throws {
        let store = Self.store(onCluster: onCluster)
        let key = "\(uniqueName("resettle")):r1"
        _ = try await store.client.checked(["SET", key, #"{"status":"processing","owner":"w","since":"2026-12-04T10:00:00.000Z"}"#, "EX", "300"])
        let wamid = "wamid.\(UUID().uuidString)"
        let send = SettledSend(key: key, wamid: wamid, internalID: "r1")
        #expect(try await store.settle([send], at: Date()) == 1)
        let place = store.wamids.place(of: wamid)
        _ = try await store.client.checked(["HDEL", place.key, place.field])
        #expect(try await store.settle([send], at: Date()) == 0, "settled already")
        #expect(try await store.sends(of: [wamid]).mapValues(\.internalID) == [wamid: "r1"], "the mapping written again")
    }

    /// A traced send's mapping holds its traceparent (the statuses continue its trace); a status that
    /// settles or repairs the mapping keeps it, instead of writing the internalId alone over it.
    @Test(arguments: [false, true]) func aTracedSendsMappingKeepsItsTraceThroughTheStatuses(onCluster: Bool) async throws {
        let store = Self.store(onCluster: onCluster)
        let key = "\(uniqueName("traced")):t1"
        let wamid = "wamid.\(UUID().uuidString)"
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        _ = try await store.complete(key, claim: nil, value: #"{"status":"completed","wamid":"\#(wamid)"}"#, ttl: .seconds(300),
                                     mapping: (wamid, MappedSend(internalID: "t1", traceparent: traceparent)))
        #expect(try await store.sends(of: [wamid]) == [wamid: MappedSend(internalID: "t1", traceparent: traceparent)])
        #expect(try await store.settle([SettledSend(key: key, wamid: wamid, internalID: "t1")], at: Date()) == 0, "completed already")
        #expect(try await store.sends(of: [wamid])[wamid]?.traceparent == traceparent, "the status kept the send's trace")
        #expect(MappedSend(stored: "t1") == MappedSend(internalID: "t1"), "a mapping without a trace, as before")

        // A traced send with an internalId as long as a UUID keeps its bucket compact: no value past
        // Redis's listpack bound (64 bytes), where one traced mapping made the whole bucket a hash table.
        let uuid = UUID().uuidString, another = "wamid.\(UUID().uuidString)"
        let bucket = store.wamids.place(of: another).key
        _ = try await store.client.checked(["DEL", bucket])
        _ = try await store.complete("\(uniqueName("traced")):\(uuid)", claim: nil, value: #"{"status":"completed"}"#, ttl: .seconds(300),
                                     mapping: (another, MappedSend(internalID: uuid, traceparent: traceparent)))
        #expect(try await store.sends(of: [another]) == [another: MappedSend(internalID: uuid, traceparent: traceparent)])
        #expect(try await store.client.checked(["OBJECT", "ENCODING", bucket]).string == "listpack", "a traced mapping keeps its bucket a listpack")
        // Written again without a trace (another minute): the earlier trace does not join the new mapping.
        try await store.mapWamids([(another, MappedSend(internalID: "again"), 900)])
        #expect(try await store.sends(of: [another]) == [another: MappedSend(internalID: "again")])
        // A mapping written by an earlier version, trace and id in one field, reads as before.
        let earlier = "wamid.\(UUID().uuidString)", place = store.wamids.place(of: earlier)
        let minute = Int(Date().timeIntervalSince1970 / 60) + 5
        _ = try await store.client.checked(["HSET", place.key, place.field, "\(minute):e1 \(traceparent)"])
        _ = try await store.client.checked(["EXPIRE", place.key, "600"])
        #expect(try await store.sends(of: [earlier]) == [earlier: MappedSend(internalID: "e1", traceparent: traceparent)])
        #expect(MappedSend(stored: "order 42") == MappedSend(internalID: "order 42"), "an internalId with a space (no validate step) reads back whole")
        #expect(MappedSend(stored: "order 42 \(traceparent)") == MappedSend(internalID: "order 42", traceparent: traceparent))
    }

    /// A bucket grown past 256 fields (too few buckets for the volume) is pruned by sampling as it is written.
    @Test func anOverfullBucketIsPrunedBySampling() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        let store = Self.store(port: redis.port, buckets: 1)
        _ = try await store.client.checked(["HSET", "wamids:{0}"] + (0..<300).flatMap { ["expired-\($0)", "1:gone-\($0)"] })
        for number in 0..<40 {
            _ = try await store.complete("k:\(number)", claim: nil, value: "{}", ttl: .seconds(60), mapping: ("wamid.\(UUID().uuidString)", MappedSend(internalID: "id-\(number)")))
        }
        let size = try #require(try await store.client.checked(["HLEN", "wamids:{0}"]).integer)
        #expect(size < 340 - 100, "expired fields removed as the bucket was written: \(size) of 340 left")
    }

    /// What SPEC 17 is about: a bucket of a hundred wamids stays a listpack, a few dozen bytes per
    /// wamid (a key per wamid cost 150–250 bytes).
    @Test func aBucketOfAHundredWamidsStaysCompact() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        let store = Self.store(port: redis.port, buckets: 1)
        let wamids = (0..<100).map { _ in "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJ" + UUID().uuidString.replacingOccurrences(of: "-", with: "").prefix(26) }
        for (number, wamid) in wamids.enumerated() {
            _ = try await store.complete("idempotency:outbound:\(number)", claim: nil, value: "{}", ttl: .seconds(86_400), mapping: (wamid, MappedSend(internalID: UUID().uuidString)))
            try await store.record(Self.statuses(wamid, ["sent", "delivered", "read"]), ttl: .seconds(604_800))
        }
        for prefix in ["wamids", "statuses"] {
            let key = "\(prefix):{0}"
            #expect(try await store.client.checked(["HLEN", key]).integer == 100)
            #expect(try await store.client.checked(["OBJECT", "ENCODING", key]).string == "listpack", "\(prefix)")
            let usage = try #require(try await store.client.checked(["MEMORY", "USAGE", key]).integer)
            #expect(usage / 100 <= (prefix == "wamids" ? 72 : 32), "\(prefix): \(usage / 100) bytes per wamid")
        }
    }
}
