import AMQPClient
import AsyncHTTPClient
import Crypto
import Foundation
import Logging
import NIOCore
import PipelineKit
import RedisClient
import RedisPlugin
import Testing
import TestSupport

/// The statuses pipeline end to end (SPEC 10): the built worker running `pipelines/statuses.yaml`,
/// real RabbitMQ and Redis, signed POSTs as Meta sends them.
@Suite(.serialized) struct WebhookTests {
    static let secret = "app-secret-e2e"
    static let verifyToken = "verify-e2e"

    /// A statuses worker on ports of its own, publishing to an exchange of its own bound to a queue.
    final class Statuses: @unchecked Sendable {
        let e2e: EndToEndHarness
        let events = EventsTests.EventQueue()
        let webhookPort = freePort()
        var worker: WorkerProcess?

        init() async throws {
            e2e = try await EndToEndHarness()
            try await events.bind(e2e.inspector)
        }

        var environment: [String: String] {
            e2e.environment.merging([
                "PIPELINE_FILE": TestServices.repository.appendingPathComponent("pipelines/statuses.yaml").path, "PIPELINE_ENV": "",
                "WEBHOOK_PORT": String(webhookPort), "WHATSAPP_APP_SECRET": WebhookTests.secret, "WHATSAPP_VERIFY_TOKEN": WebhookTests.verifyToken,
                "OUTBOUND_EVENTS_EXCHANGE": events.exchange,
            ]) { $1 }
        }

        /// Starts the worker, with `extra` over its environment.
        func start(_ extra: [String: String] = [:]) async throws {
            let port = freePort()
            let process = try WorkerProcess(environment: environment.merging(extra.merging(["STATUSES_HEALTH_PORT": String(port)]) { $1 }) { $1 }, healthPort: port)
            try await process.waitUntilReady()
            worker = process
        }

        var url: String { "http://127.0.0.1:\(webhookPort)/webhooks/whatsapp" }

        /// POSTs `body` signed (or with `signature` as given); returns the status.
        func post(_ body: String, signature: String?? = .none) async throws -> Int {
            try await MetaWebhook.post(body, to: url, signature: signature ?? Optional(WebhookTests.sign(body)))
        }

        func get(_ query: String) async throws -> (Int, String) {
            let response = try await HTTPClient.shared.execute(HTTPClientRequest(url: url + "?" + query), timeout: .seconds(5))
            return (Int(response.status.code), String(buffer: try await response.body.collect(upTo: 1 << 16)))
        }

        func cleanUp() async throws {
            try await worker?.stop()
            await e2e.inspector.delete([events.queue])
            await e2e.cleanUp()
        }
    }

    static func sign(_ body: String) -> String {
        MetaWebhook.signature(body, secret: secret)
    }

    /// A wamid's published statuses as its `statuses:{n}` bucket holds them (SPEC 17), nil for none.
    static func published(_ wamid: String, _ redis: RedisClient) async throws -> String? {
        let place = WamidBuckets(prefix: "statuses", count: RedisSettings.defaultStateBuckets).place(of: wamid)
        return try await redis.send(["HGET", place.key, place.field]).string
    }

    static func statuses(_ items: [(wamid: String, status: String, callback: String?)]) -> String {
        MetaWebhook.statuses(items)
    }

    @Test func signedStatusesBecomeDeliveryEventsOnceAndInOrder() async throws {
        let statuses = try await Statuses()
        try await statuses.start()
        let prefix = uniqueName("w")
        // 50 statuses, half correlated by biz_opaque_callback_data, half through the wamid mapping
        // (here as the layout before SPEC 17 left it, a `wamid:` key per wamid: still read).
        let redis = statuses.e2e.redis()
        for number in 25..<50 { _ = try await redis.send(["SET", "wamid:\(prefix).\(number)", "order-\(number)", "EX", "600"]) }
        let body = Self.statuses((0..<50).map { ("\(prefix).\($0)", "delivered", $0 < 25 ? "order-\($0)" : nil) })
        #expect(try await statuses.post(body) == 200)
        let first = try await statuses.events.take(statuses.e2e.inspector, expecting: 50)
        #expect(first.count == 50)
        #expect(Set(first.compactMap { $0.body["internalId"]?.stringValue }) == Set((0..<50).map { "order-\($0)" }), "each status carries its internalId")
        #expect(first.allSatisfy { $0.routingKey == "delivery.delivered" && $0.body["at"]?.stringValue == "2027-01-15T08:00:00.000Z" })

        #expect(try await statuses.post(body) == 200, "Meta delivers the same POST again")
        #expect(try await statuses.post(body, signature: .some(nil)) == 401, "no signature")
        #expect(try await statuses.post(body, signature: "sha256=" + String(repeating: "ab", count: 32)) == 401, "a wrong signature")
        // Before, a character of two bytes in the (not yet checked) header trapped: the worker ended.
        #expect(try await statuses.post(body, signature: "sha256=é") == 401, "a signature that is no hex")
        #expect(try await statuses.post(body, signature: "sha256=" + String(repeating: "é", count: 32)) == 401, "no hex, 64 bytes")
        #expect(try await statuses.post("not json") == 400)
        // Signed, but nested deeper than a message is read: answered 200 before, its statuses dropped for good.
        let deep = String(repeating: "[", count: Message.maximumNesting + 6) + String(repeating: "]", count: Message.maximumNesting + 6)
        #expect(try await statuses.post(#"{"object":"whatsapp_business_account","entry":[],"deep":\#(deep)}"#) == 400)
        #expect(try await statuses.post(#"{"object":"x","pad":"\#(String(repeating: "p", count: 1 << 20))"}"#) == 413)
        // read before delivered: read goes out, the late delivered is dropped.
        #expect(try await statuses.post(Self.statuses([("\(prefix).late", "read", "late-1"), ("\(prefix).late", "delivered", "late-1")])) == 200)
        let second = try await statuses.events.take(statuses.e2e.inspector, expecting: 1, timeout: .seconds(5))
        #expect(second.map(\.routingKey) == ["delivery.read"], "no duplicate events and no late delivered: \(second.map(\.routingKey))")
        let metrics = await statuses.worker?.text("/metrics") ?? ""
        #expect(metrics.contains(#"outbound_webhook_statuses_dropped_total{reason="duplicate"} 50"#))
        #expect(metrics.contains(#"outbound_webhook_statuses_dropped_total{reason="out_of_order"} 1"#))
        try await statuses.cleanUp()
    }

    @Test func verificationAnswersTheChallengeOnlyForTheRightToken() async throws {
        let statuses = try await Statuses()
        try await statuses.start()
        let (ok, challenge) = try await statuses.get("hub.mode=subscribe&hub.verify_token=\(Self.verifyToken)&hub.challenge=1158201444")
        #expect(ok == 200 && challenge == "1158201444")
        let (refused, _) = try await statuses.get("hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1158201444")
        #expect(refused == 403)
        try await statuses.cleanUp()
    }

    @Test func withTheBrokerDownThePostIsRefusedWith503AndMetasRetrySucceeds() async throws {
        let statuses = try await Statuses()
        try await statuses.start()
        let body = Self.statuses([("\(uniqueName("down")).1", "sent", "order-down")])
        try TestServices.services("stop", "rabbitmq")
        let refused = try await statuses.post(body)
        try TestServices.services("start", "rabbitmq")
        #expect(refused == 503, "not confirmed: Meta must retry")
        try await poll("Meta's retry succeeds once the broker is back", timeout: .seconds(60)) { (try? await statuses.post(body)) == 200 }
        let taken = try await statuses.events.take(statuses.e2e.inspector, expecting: 1)
        #expect(taken.map(\.routingKey) == ["delivery.sent"])
        try await statuses.cleanUp()
    }

    @Test func aThousandStatusesInOnePostAreHandledInTime() async throws {
        let statuses = try await Statuses()
        try await statuses.start()
        let prefix = uniqueName("k")
        let started = ContinuousClock.now
        #expect(try await statuses.post(Self.statuses((0..<1000).map { ("\(prefix).\($0)", "sent", "o-\($0)") })) == 200)
        let took = ContinuousClock.now - started
        print("a POST of 1,000 statuses answered in \(took)")
        #expect(took < .seconds(10), "well within Meta's timeout: \(took)")
        #expect(try await statuses.events.take(statuses.e2e.inspector, expecting: 1000).count == 1000)
        try await statuses.cleanUp()
    }

    /// SPEC 17: the statuses pipeline on a Redis Cluster of three masters dedups, orders and
    /// correlates as on one Redis. Meta's re-delivery of 40 `delivered` and 40 late `sent` publish
    /// nothing; the 40 `read` after them are the next events in the queue, their internalIds from
    /// the wamid mapping (as `mark_completed` writes it on the cluster).
    @Test func statusesAreDedupedAndOrderedOnARedisCluster() async throws {
        let statuses = try await Statuses()
        try await statuses.start(["REDIS_CLUSTER": TestServices.redisCluster.map(\.description).joined(separator: ",")])
        let prefix = uniqueName("c")
        let cluster = RedisStore(client: RedisClient(configuration: RedisConfiguration(cluster: TestServices.redisCluster)), logger: Logger(label: "test"))
        try await cluster.mapWamids((0..<40).map { ("\(prefix).\($0)", MappedSend(internalID: "order-\($0)"), 600) })
        let delivered = Self.statuses((0..<40).map { ("\(prefix).\($0)", "delivered", "order-\($0)") })
        #expect(try await statuses.post(delivered) == 200)
        #expect(try await statuses.events.take(statuses.e2e.inspector, expecting: 40).allSatisfy { $0.routingKey == "delivery.delivered" })
        #expect(try await statuses.post(delivered) == 200, "Meta delivers the POST again")
        #expect(try await statuses.post(Self.statuses((0..<40).map { ("\(prefix).\($0)", "sent", "order-\($0)") })) == 200)
        #expect(try await statuses.post(Self.statuses((0..<40).map { ("\(prefix).\($0)", "read", nil) })) == 200)
        let next = try await statuses.events.take(statuses.e2e.inspector, expecting: 40)
        #expect(next.map(\.routingKey) == Array(repeating: "delivery.read", count: 40), "neither the copy nor the late `sent` was published")
        #expect(Set(next.compactMap { $0.body["internalId"]?.stringValue }) == Set((0..<40).map { "order-\($0)" }), "correlated through the mapping on the cluster")
        try await statuses.cleanUp()
    }

    /// A crash after a status's event went out but before the broker confirmed it (SPEC 10: 200 only
    /// once every event is confirmed; Meta retries otherwise): nothing counts as published before the
    /// confirm, so Meta's retry publishes the status instead of dropping it as a duplicate.
    @Test func aStatusCountsAsPublishedOnlyOnceItsEventIsConfirmed() async throws {
        let statuses = try await Statuses()
        let (proxy, url) = try HoldingProxy.toTestBroker()
        defer { proxy.close() }
        try await statuses.start(["RABBITMQ_URL": url])
        let wamid = "\(uniqueName("crash")).1"
        let body = Self.statuses([(wamid, "delivered", "order-crash")])
        let redis = statuses.e2e.redis()
        proxy.hold()
        let interrupted = Task { try? await statuses.post(body) }
        try await poll("the event published, its confirm awaited") { proxy.swallowed > 100 }
        #expect(try await Self.published(wamid, redis) == nil, "not recorded as published before the broker confirmed")
        statuses.worker?.signal(SIGKILL)
        #expect(try await statuses.worker?.waitForExit(timeout: .seconds(10)) == 128 + SIGKILL)
        #expect(await interrupted.value == nil, "the crash answered nothing: Meta delivers the POST again")
        proxy.close()

        try await statuses.start()
        #expect(try await statuses.post(body) == 200, "Meta's retry")
        let taken = try await statuses.events.take(statuses.e2e.inspector, expecting: 1)
        #expect(taken.map(\.routingKey) == ["delivery.delivered"], "the status the crash interrupted is published, not dropped as a duplicate")
        #expect(try await Self.published(wamid, redis)?.hasSuffix(":2") == true, "recorded once confirmed, before the 200 (delivered: 2)")
        #expect(try await statuses.post(body) == 200)
        let metrics = await statuses.worker?.text("/metrics") ?? ""
        #expect(metrics.contains(#"outbound_webhook_statuses_dropped_total{reason="duplicate"} 1"#), "a copy after the 200 is a duplicate")
        try await statuses.cleanUp()
    }

    /// SIGTERM while a POST waits for its event's confirm (SPEC 6): intake stops — a new POST is
    /// answered 503 at once (Meta retries), not refused —, the waiting POST is answered when its
    /// event fails, and the worker exits 0 within the drain timeout (20 s), not by a forced exit.
    @Test func onSigtermEveryPostIsAnsweredAndTheWorkerExitsCleanly() async throws {
        let statuses = try await Statuses()
        let (proxy, url) = try HoldingProxy.toTestBroker()
        defer { proxy.close() }
        try await statuses.start(["RABBITMQ_URL": url])
        let worker = try #require(statuses.worker)
        proxy.hold()
        let waiting = Task { try? await statuses.post(Self.statuses([("\(uniqueName("term")).1", "sent", "order-term")])) }
        try await poll("a POST waits for its event's confirm") { proxy.swallowed > 100 }
        let signalled = ContinuousClock.now
        worker.signal(SIGTERM)
        try await poll("intake stopped") { await worker.get("/ready")?.status == 503 }
        let late = try? await statuses.post(Self.statuses([("\(uniqueName("late")).1", "sent", nil)]))
        #expect(late == 503, "a POST after intake stopped is answered 503 at once, not refused nor left waiting")
        // The broker connection drops: the waiting event is never confirmed.
        proxy.close()
        #expect(await waiting.value == 503, "the POST in flight at SIGTERM is answered 503")
        let status = try await worker.waitForExit(timeout: .seconds(20))
        #expect(status == 0, "a clean exit, not a forced one: \(worker.log.suffix(2000))")
        #expect(ContinuousClock.now - signalled < .seconds(20), "within the drain timeout")
        try await statuses.cleanUp()
    }
}
