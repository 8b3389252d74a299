import AMQPClient
import Foundation
import PipelineKit
import Testing
import TestSupport

/// Meta's account limits end to end (SPEC 15): both shipped pipelines on real RabbitMQ and Redis,
/// the stand-in refusing a paused template with `132015` as Meta does.
@Suite(.serialized) struct AccountLimitsTests {
    /// A `message_template_status_update` webhook for template `name` (en_US).
    static func templateUpdate(_ event: String, name: String, title: String? = nil) -> String {
        let info = title.map { #","other_info":{"title":"\#($0)","description":"quality"}"# } ?? ""
        return #"{"object":"whatsapp_business_account","entry":[{"id":"1","time":1800000000,"changes":[{"field":"message_template_status_update","value":{"event":"\#(event)","message_template_id":1,"message_template_name":"\#(name)","message_template_language":"en_US","reason":"NONE"\#(info)}}]}]}"#
    }

    func template(_ e2e: EndToEndHarness, _ number: Int, name: String, category: String = "marketing") -> [UInt8] {
        Array(#"{"internalId":"\#(e2e.id(number))","to":"\#(e2e.recipient(number))","type":"template","category":"\#(category)","template":{"name":"\#(name)","language":"en_US"}}"#.utf8)
    }

    /// The test variant's delay queues hold a wait at most ~1 s, so the campaign comes back every
    /// second, finds its template paused (one read a second per worker) and waits again — with no
    /// request — until the statuses pipeline records the approval.
    @Test func aPausedTemplateWaitsWithoutARequestPerMessageUntilItIsApprovedWhileOtherTemplatesFlow() async throws {
        let statuses = try await WebhookTests.Statuses()
        let e2e = statuses.e2e
        let outboundEvents = EventsTests.EventQueue()
        try await outboundEvents.bind(e2e.inspector)
        try await statuses.start()
        // Templates of this run's own, so states left by other runs in the shared Redis do not matter.
        let suffix = UUID().uuidString.prefix(8).lowercased()
        let paused = "campaign_\(suffix)", other = "order_\(suffix)"
        e2e.server.pauseTemplate(paused)
        let worker = try await e2e.startWorker(extra: ["OUTBOUND_EVENTS_EXCHANGE": outboundEvents.exchange])
        let campaign = 200
        try await e2e.publish((1...campaign).map { template(e2e, $0, name: paused) } + (1...10).map { template(e2e, campaign + $0, name: other, category: "utility") })

        let others = try await outboundEvents.take(e2e.inspector, expecting: 10)
        #expect(Set(others.compactMap { $0.body["internalId"]?.stringValue }) == Set((1...10).map { e2e.id(campaign + $0) }), "the other template's messages go meanwhile")
        // The campaign goes round the delay queues, each time held without a request.
        try await poll("the campaign held twice over") { await metricTotal(worker, "outbound_account_limit_waits_total") >= Double(2 * campaign) }
        let refused = e2e.server.requests.filter { $0.json?["template"]?["name"]?.stringValue == paused }
        // Paced at 80/s, the first answer is read before the next slot: a few refused requests, not one per message.
        #expect(!refused.isEmpty && refused.count <= 3, "at most 3 refused requests of a paused template: \(refused.count)")
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead-lettered")
        let redis = e2e.redis()
        let state = try await redis.send(["GET", "template:\(paused):en_US"]).string
        #expect(state?.hasPrefix("paused:") == true, "shared with every worker: \(state ?? "nil")")
        let limits = try TestServices.run(TestServices.executable, ["limits"], environment: e2e.environment)
        #expect(limits.output.contains("template \(paused):en_US: paused until "), "`outbound-worker limits` shows it: \(limits.output)")

        // Meta approves it again: the statuses pipeline records it and the campaign goes, each message once.
        e2e.server.approveTemplate(paused)
        #expect(try await statuses.post(Self.templateUpdate("APPROVED", name: paused)) == 200)
        let approved = ContinuousClock.now
        let sent = try await outboundEvents.take(e2e.inspector, expecting: campaign)
        #expect(ContinuousClock.now - approved < .seconds(10), "all sent within 10 s of the approval")
        #expect(Set(sent.compactMap { $0.body["internalId"]?.stringValue }) == Set((1...campaign).map { e2e.id($0) }))
        #expect(sent.allSatisfy { $0.routingKey == "outbound.sent" })
        let accepted = e2e.server.requests.filter { $0.succeeded && $0.json?["template"]?["name"]?.stringValue == paused }
        #expect(accepted.count == campaign, "each sent once")
        #expect(try await redis.send(["GET", "template:\(paused):en_US"]).string == nil)

        // DISABLED: the next message of that template is dead-lettered without a request.
        #expect(try await statuses.post(Self.templateUpdate("DISABLED", name: other)) == 200)
        try await poll("disabled shared") { try await redis.send(["GET", "template:\(other):en_US"]).string == "disabled" }
        #expect(try await redis.send(["GET", "template:1:\(other):en_US"]).string == "disabled",
                "and under the account the update names (entry 1), which senders `sender_accounts` gives it read")
        let before = e2e.server.requests.count
        try await e2e.publish([template(e2e, campaign + 11, name: other, category: "utility")])
        let letters = try await e2e.inspector.drain("\(e2e.queue).dead", expecting: 1)
        #expect(letters.first?.properties.headers["x-error"]?.stringValue?.hasPrefix("template disabled") == true)
        #expect(letters.first?.properties.headers["x-error-code"] == .int(132016))
        #expect(!e2e.server.requests.dropFirst(before).contains { $0.json?["template"]?["name"]?.stringValue == other }, "a disabled template's message draws no request")

        try await worker.stop()
        await e2e.inspector.delete([outboundEvents.queue])
        try await statuses.cleanUp()
    }

    /// A portfolio with `messaging_limit: 20` (18 usable without lanes) and a second sender outside
    /// it; `marketing_retry_after: 2s`. The stand-in declines the first message to one recipient
    /// with `131049`.
    @Test func aPortfolioAtItsLimitHoldsNewRecipientsWhileCountedOnesFlowAndADeclinedMessageGoesOnceMore() async throws {
        let e2e = try await EndToEndHarness()
        let events = EventsTests.EventQueue()
        try await events.bind(e2e.inspector)
        // A portfolio and senders of this run's own: windows left in the shared Redis by other runs do not matter.
        let portfolio = uniqueName("portfolio").replacingOccurrences(of: "-", with: "_")
        let sender = String(UInt64.random(in: 100_000_000_000...999_999_999_999)), outside = String(UInt64.random(in: 100_000_000_000...999_999_999_999))
        try """
            source:
              with: { prefetch: 64, concurrency: 16, drain_timeout: 10s, max_park: 2s, retry: { max_attempts: 5, backoff: [300ms, 1s] } }
            resources:
              whatsapp:
                with: { timeout: 2s, portfolios: { \(portfolio): { senders: ["\(sender)"], messaging_limit: 20 } } }
            steps:
              - name: idempotency
                with: { lease: 3s }
              - name: dispatch
                with: { marketing_retry_after: 2s }
            """.write(to: e2e.folder.appendingPathComponent("outbound.e2e.yaml"), atomically: true, encoding: .utf8)
        let declined = e2e.recipient(900)
        e2e.server.answerRequests { request in
            request.recipient == declined && !e2e.server.requests.dropLast().contains { $0.recipient == declined }
                ? .error(status: 400, code: 131049, message: "(#131049) This message was not delivered to maintain healthy ecosystem engagement.")
                : .success
        }
        let worker = try await e2e.startWorker(extra: ["OUTBOUND_EVENTS_EXCHANGE": events.exchange, "WHATSAPP_PHONE_NUMBER_ID": sender])
        func template(_ number: Int, from: String? = nil) -> [UInt8] {
            let extra = from.map { #","phoneNumberId":"\#($0)""# } ?? ""
            return Array(#"{"internalId":"\#(e2e.id(number))-\#(UUID().uuidString.prefix(4))","to":"\#(e2e.recipient(number))","type":"template","template":{"name":"order_update","language":"en_US"}\#(extra)}"#.utf8)
        }
        // Ten recipients counted first.
        try await e2e.publish((1...10).map { template($0) })
        _ = try await events.take(e2e.inspector, expecting: 10)
        // 20 new recipients, the ten counted ones again, a text to a new recipient, and the declined one from a sender outside the portfolio.
        let declinedAt = ContinuousClock.now
        try await e2e.publish((11...30).map { template($0) } + (1...10).map { template($0) } + [e2e.textMessage(800), template(900, from: outside)])
        let sent = try await events.take(e2e.inspector, expecting: 10 + 8 + 1 + 1)
        #expect(sent.allSatisfy { $0.routingKey == "outbound.sent" }, "\(sent.map(\.routingKey))")
        let byRecipient = Dictionary(grouping: e2e.server.requests.filter(\.succeeded), by: \.recipient).mapValues(\.count)
        #expect((1...10).allSatisfy { byRecipient[e2e.recipient($0)] == 2 }, "counted recipients cost no unit: each sent twice")
        #expect((11...30).filter { byRecipient[e2e.recipient($0)] == 1 }.count == 8, "18 usable units: 10 counted + 8 new")
        #expect(byRecipient[e2e.recipient(800)] == 1, "a text does not count")
        let toDeclined = e2e.server.requests.filter { $0.recipient == declined }
        #expect(toDeclined.count == 2, "declined once (131049), sent once more")
        if toDeclined.count == 2 {
            #expect(toDeclined[1].arrived - toDeclined[0].arrived >= .seconds(2), "not before marketing_retry_after")
        }
        #expect(ContinuousClock.now - declinedAt < .seconds(30))
        try await poll("the others waiting for the limit") { await metricTotal(worker, "outbound_account_limit_waits_total") >= 12 }
        #expect(try await e2e.inspector.depth("\(e2e.queue).dead") == 0, "nothing dead")
        let limits = try TestServices.run(TestServices.executable, ["limits"], environment: e2e.environment.merging(["WHATSAPP_PHONE_NUMBER_ID": sender]) { $1 })
        #expect(limits.output.contains("portfolio \(portfolio) (senders \(sender)): 18 of 20 recipients in the last 24 h; 0 left"), "\(limits.output)")

        try await worker.stop()
        // The twelve would wait a day: taken out of the delay queues, which stay (empty).
        for queue in (1...2).map({ "\(e2e.queue).retry.\($0)" }) + [e2e.queue] {
            let depth = try await e2e.inspector.depth(queue)
            if depth > 0 { _ = try await e2e.inspector.drain(queue, expecting: depth) }
        }
        await e2e.inspector.delete([events.queue])
        await e2e.cleanUp()
    }
    /// A template message to a new recipient that never reached the Cloud API (its connection refused)
    /// kept the messaging-limit unit it took: an egress outage during a campaign filled the portfolio's
    /// window with recipients who were sent nothing, and new recipients waited up to a day.
    @Test func aSendThatNeverLeftGivesItsMessagingLimitUnitBack() async throws {
        let e2e = try await EndToEndHarness()
        let portfolio = uniqueName("portfolio").replacingOccurrences(of: "-", with: "_")
        let sender = String(UInt64.random(in: 100_000_000_000...999_999_999_999))
        try """
            source:
              with: { retry: { max_attempts: 1, backoff: [300ms] } }
            resources:
              whatsapp:
                with: { timeout: 2s, portfolios: { \(portfolio): { senders: ["\(sender)"], messaging_limit: 20 } } }
            """.write(to: e2e.folder.appendingPathComponent("outbound.e2e.yaml"), atomically: true, encoding: .utf8)
        let environment = ["WHATSAPP_API_URL": "http://127.0.0.1:\(freePort())", "WHATSAPP_PHONE_NUMBER_ID": sender]
        let worker = try await e2e.startWorker(extra: environment)
        try await e2e.publish([Array(#"{"internalId":"\#(e2e.id(1))","to":"\#(e2e.recipient(1))","type":"template","template":{"name":"order_update","language":"en_US"}}"#.utf8)])
        let dead = try await e2e.inspector.drain("\(e2e.queue).dead", expecting: 1)
        try await worker.stop()
        #expect(dead.first?.properties.headers["x-error"]?.stringValue?.contains("connection") == true, "\(dead.first?.properties.headers["x-error"]?.stringValue ?? "")")
        let limits = try TestServices.run(TestServices.executable, ["limits"], environment: e2e.environment.merging(environment) { $1 })
        #expect(limits.output.contains("portfolio \(portfolio) (senders \(sender)): 0 of 20 recipients"), "\(limits.output)")
        await e2e.cleanUp()
    }
}
