import AMQPClient
import AsyncHTTPClient
import Foundation
import NIOCore
import PipelineKit
import RedisClient
import Synchronization
import Testing
import TestSupport

/// Sends in doubt end to end (SPEC 13): both pipelines built and running, real RabbitMQ and Redis,
/// and a stand-in that loses answers the way Meta's network does — after accepting the request
/// (`.hangUp`: a status follows) or before (`.drop`: none) — and posts signed `sent` and
/// `delivered` statuses to the statuses pipeline for what it accepted.
@Suite(.serialized) struct InDoubtTests {
    /// The outbound worker and the statuses worker on one Redis, the stand-in posting statuses.
    final class Scenario: @unchecked Sendable {
        let statuses: WebhookTests.Statuses
        let outboundEvents = EventsTests.EventQueue()
        var e2e: EndToEndHarness { statuses.e2e }
        /// Recipients whose first request is accepted with its answer lost, and those whose first request is lost unaccepted.
        let acceptedLost: Set<String>
        let unacceptedLost: Set<String>

        /// Recipients the stand-in has had a request for.
        final class Seen: Sendable {
            private let recipients = Mutex<Set<String>>([])
            /// Whether this is the first request for `recipient`.
            func first(_ recipient: String) -> Bool { recipients.withLock { $0.insert(recipient).inserted } }
        }

        init(acceptedLost: Range<Int>, unacceptedLost: Range<Int>) async throws {
            statuses = try await WebhookTests.Statuses()
            try await outboundEvents.bind(statuses.e2e.inspector)
            let e2e = statuses.e2e
            self.acceptedLost = Set(acceptedLost.map(e2e.recipient))
            self.unacceptedLost = Set(unacceptedLost.map(e2e.recipient))
            let (hangUp, drop, seen) = (self.acceptedLost, self.unacceptedLost, Seen())
            e2e.server.answerRequests { request in
                guard seen.first(request.recipient) else { return .success }
                if hangUp.contains(request.recipient) { return .hangUp }
                if drop.contains(request.recipient) { return .drop }
                return .success
            }
            let url = statuses.url
            e2e.server.onAccepted { accepted in
                Task {
                    // Meta posts `sent` within about a second of accepting a message, then `delivered`.
                    try? await Task.sleep(for: .milliseconds(300))
                    for status in ["sent", "delivered"] { await Self.post(status, of: accepted, to: url) }
                }
            }
        }

        /// POSTs a signed status webhook as Meta does, again while the statuses pipeline answers otherwise than 200.
        static func post(_ status: String, of accepted: CloudAPIStandInServer.Accepted, to url: String) async {
            let callback = accepted.callbackData.map { #","biz_opaque_callback_data":"\#($0)""# } ?? ""
            let body = #"{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"\#(accepted.sender)"},"statuses":[{"id":"\#(accepted.wamid)","status":"\#(status)","timestamp":"\#(Int(Date().timeIntervalSince1970))","recipient_id":"\#(accepted.recipient.filter(\.isNumber))"\#(callback)}]}}]}]}"#
            for _ in 0..<50 {
                var request = HTTPClientRequest(url: url)
                request.method = .POST
                request.headers.add(name: "Content-Type", value: "application/json")
                request.headers.add(name: "X-Hub-Signature-256", value: WebhookTests.sign(body))
                request.body = .bytes(ByteBuffer(string: body))
                if let response = try? await HTTPClient.shared.execute(request, timeout: .seconds(10)), response.status == .ok { return }
                try? await Task.sleep(for: .milliseconds(200))
            }
        }

        func startOutbound(_ extra: [String: String] = [:]) async throws -> WorkerProcess {
            try await e2e.startWorker(extra: ["OUTBOUND_EVENTS_EXCHANGE": outboundEvents.exchange, "WHATSAPP_THROUGHPUT": "1000", "WHATSAPP_IN_DOUBT_WINDOW": "10s"].merging(extra) { $1 })
        }

        func key(_ number: Int, _ redis: RedisClient) async throws -> String? {
            try await redis.send(["GET", "idempotency:outbound:\(e2e.id(number))"]).string
        }

        func cleanUp() async throws {
            await e2e.inspector.delete([outboundEvents.queue])
            try await statuses.cleanUp()
        }
    }

    /// 60 messages: 10 whose answers are lost after Meta accepted them, 5 lost before. Each is
    /// accepted once: the 10 are settled by their status, the 5 resent once the 10 s window passes.
    @Test func lostAnswersAreSettledByTheirStatusOrResentAfterTheWindowAndEachIsAcceptedOnce() async throws {
        let scenario = try await InDoubtTests.Scenario(acceptedLost: 0..<10, unacceptedLost: 10..<15)
        let e2e = scenario.e2e
        try await scenario.statuses.start()
        let worker = try await scenario.startOutbound()
        try await e2e.publish((0..<60).map(e2e.textMessage))
        try await poll("60 accepted", timeout: .seconds(60)) { e2e.server.sentByRecipient.count == 60 }
        try await e2e.waitUntilFinished(60, by: [worker], timeout: .seconds(60))
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 }, "each accepted exactly once: \(e2e.server.sentByRecipient.filter { $0.value != 1 })")
        for number in 10..<15 { #expect(e2e.requestsByRecipient[e2e.recipient(number)] == 2, "lost unaccepted, then sent once more after the window") }
        let redis = e2e.redis()
        for number in 0..<10 {
            let key = try await scenario.key(number, redis) ?? ""
            #expect(key.contains(#""status":"completed""#) && key.contains(#""wamid":"wamid.standin."#), "settled by its status, with the stand-in's wamid: \(key)")
        }
        let events = try await scenario.outboundEvents.take(e2e.inspector, expecting: 60)
        #expect(events.count == 60 && events.allSatisfy { $0.routingKey == "outbound.sent" }, "one final event each, all sent: \(events.map(\.routingKey))")
        let resolved = Set(events.filter { $0.body["resolvedBy"]?.stringValue == "status" }.compactMap { $0.body["internalId"]?.stringValue })
        #expect(resolved == Set((0..<10).map(e2e.id)), "the 10 resolved by their status")
        for event in events where resolved.contains(event.body["internalId"]?.stringValue ?? "") {
            #expect(event.body["wamid"]?.stringValue?.hasPrefix("wamid.standin.") == true, "with the status's wamid")
        }
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        #expect((await worker.text("/metrics") ?? "").contains(#"outbound_in_doubt_total{resolution="status"}"#))
        try await worker.stop()
        try await scenario.cleanUp()
    }

    /// `on_in_doubt: dead_letter`: never a second copy — the 5 without a status are dead-lettered
    /// (`x-error` starts `in doubt`, `outbound.failed` with code "in_doubt", as `schema --events`
    /// allows); the 10 are sent once.
    @Test func withDeadLetterTheUnsettledAreDeadLetteredAndNeverSentTwice() async throws {
        let scenario = try await InDoubtTests.Scenario(acceptedLost: 0..<10, unacceptedLost: 10..<15)
        let e2e = scenario.e2e
        try await scenario.statuses.start()
        let worker = try await scenario.startOutbound(["WHATSAPP_ON_IN_DOUBT": "dead_letter"])
        try await e2e.publish((0..<60).map(e2e.textMessage))
        try await poll("5 dead-lettered", timeout: .seconds(60)) { try await e2e.inspector.depth("\(e2e.queue).dead") == 5 }
        try await e2e.waitUntilFinished(60, by: [worker], timeout: .seconds(60))
        #expect(e2e.server.sentByRecipient.count == 55)
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 }, "each accepted once: \(e2e.server.sentByRecipient.filter { $0.value != 1 }); worker log \(worker.logPath)")
        for number in 10..<15 { #expect(e2e.requestsByRecipient[e2e.recipient(number)] == 1, "never sent a second time") }
        let letters = try await e2e.inspector.drain("\(e2e.queue).dead", expecting: 5)
        #expect(letters.allSatisfy { $0.properties.headers["x-error"]?.stringValue?.hasPrefix("in doubt") == true })
        let events = try await scenario.outboundEvents.take(e2e.inspector, expecting: 60)
        let failed = events.filter { $0.routingKey == "outbound.failed" }
        #expect(failed.count == 5 && failed.allSatisfy { $0.body["error"]?["code"]?.stringValue == "in_doubt" }, "\(failed.map(\.body))")
        let check = try e2e.eventSchemaCheck(failed.map(\.body))
        #expect(check.contains("events ok"), "the in-doubt failure matches `schema --events` (its code a string): \(check)")
        #expect(events.filter { $0.routingKey == "outbound.sent" }.count == 55)
        try await worker.stop()
        try await scenario.cleanUp()
    }

    /// A send in doubt waits in memory on the pipeline it started with. A reload must not wait for
    /// it: the SIGHUP after it (the fix of a bad token, say) waited behind it for the whole window.
    @Test func aSecondReloadDoesNotWaitForAMessageInDoubtOnTheFirstPipeline() async throws {
        let scenario = try await InDoubtTests.Scenario(acceptedLost: 0..<0, unacceptedLost: 0..<1)
        let e2e = scenario.e2e
        let environment = e2e.folder.appendingPathComponent(".env")
        try "IDEMPOTENCY_TTL_SECONDS=86400\n".write(to: environment, atomically: true, encoding: .utf8)
        let worker = try await e2e.startWorker(extra: ["OUTBOUND_EVENTS_EXCHANGE": scenario.outboundEvents.exchange, "WHATSAPP_IN_DOUBT_WINDOW": "60s"], directory: e2e.folder)
        let redis = e2e.redis()
        try await e2e.publish([e2e.textMessage(0)])
        try await poll("in doubt") { try await scenario.key(0, redis)?.contains(#""status":"in_doubt""#) == true }
        for (round, ttl) in [86_000, 85_000].enumerated() {
            try "IDEMPOTENCY_TTL_SECONDS=\(ttl)\n".write(to: environment, atomically: true, encoding: .utf8)
            worker.signal(SIGHUP)
            try await poll("reload \(round + 1) done while the message waits in doubt", timeout: .seconds(10)) {
                worker.log.components(separatedBy: "pipeline reloaded").count - 1 == round + 1
            }
        }
        #expect(try await scenario.key(0, redis)?.contains(#""status":"in_doubt""#) == true, "still in doubt: the reloads did not wait for it")
        #expect(e2e.requestsByRecipient[e2e.recipient(0)] == 1, "not resent before its window")
        try await worker.stop()
        try await scenario.cleanUp()
    }

    /// A worker killed while 5 sends are in doubt: the next one waits from the keys' `since`, resends
    /// none before the window, and each is accepted once.
    @Test func aWorkerKilledWhileSendsAreInDoubtLeavesThemInDoubtAndTheNextResendsAfterTheWindow() async throws {
        let scenario = try await InDoubtTests.Scenario(acceptedLost: 0..<0, unacceptedLost: 0..<5)
        let e2e = scenario.e2e
        let redis = e2e.redis()
        let first = try await scenario.startOutbound()
        try await e2e.publish((0..<5).map(e2e.textMessage))
        try await poll("5 in doubt") {
            var inDoubt = 0
            for number in 0..<5 where try await scenario.key(number, redis)?.contains(#""status":"in_doubt""#) == true { inDoubt += 1 }
            return inDoubt == 5
        }
        first.signal(SIGKILL)
        _ = try await first.waitForExit(timeout: .seconds(10))
        let second = try await scenario.startOutbound()
        try await poll("5 accepted", timeout: .seconds(60)) { e2e.server.sentByRecipient.count == 5 }
        try await e2e.waitUntilSettled()
        for number in 0..<5 {
            let requests = e2e.server.requests.filter { $0.recipient == e2e.recipient(number) }
            #expect(requests.count == 2, "lost, then sent once more: \(requests.count)")
            if requests.count == 2 {
                let gap = requests[1].arrived - requests[0].arrived
                #expect(gap >= .milliseconds(9_500), "not resent before its window: \(gap)")
            }
        }
        #expect(e2e.server.sentByRecipient.values.allSatisfy { $0 == 1 })
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0)
        try await second.stop()
        try await scenario.cleanUp()
    }
}
