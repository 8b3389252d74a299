import AsyncHTTPClient
import Foundation
import PipelineKit
import Testing
import TestSupport

/// Opt-outs end to end (SPEC 16): both shipped pipelines on real RabbitMQ and Redis. An inbound
/// STOP to the statuses pipeline lists its writer for the business number written to; the outbound
/// worker then ends that number's marketing messages `suppressed` with no request, while its utility
/// messages and other senders' marketing go; START takes it off again; the CLI sees the same lists.
@Suite(.serialized) struct OptOutTests {
    /// An inbound text from `from` (digits, as Meta writes it) to the business number `sender`.
    static func inbound(_ text: String, from: String, to sender: String) -> String {
        #"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"phone_number_id":"\#(sender)"},"messages":[{"from":"\#(from)","id":"wamid.in.\#(UUID().uuidString)","timestamp":"1800000000","type":"text","text":{"body":"\#(text)"}}]}}]}]}"#
    }

    func template(_ e2e: EndToEndHarness, _ number: Int, to: String, name: String = "spring_sale", extra: String = "") -> [UInt8] {
        Array(#"{"internalId":"\#(e2e.id(number))","to":"\#(to)","type":"template","template":{"name":"\#(name)","language":"en_US"}\#(extra)}"#.utf8)
    }

    @Test func aStopFromTheInboxSuppressesThatSendersMarketingUntilStart() async throws {
        let statuses = try await WebhookTests.Statuses()
        // A sender of this run's own, so lists left by other runs in the shared Redis do not matter.
        let sender = String(UInt64.random(in: 100_000_000_000...999_999_999_999))
        let otherSender = String(UInt64.random(in: 100_000_000_000...999_999_999_999))
        let e2e = statuses.e2e
        let outboundEvents = EventsTests.EventQueue()
        try await outboundEvents.bind(e2e.inspector)
        try await statuses.start()
        let worker = try await e2e.startWorker(extra: ["OUTBOUND_EVENTS_EXCHANGE": outboundEvents.exchange, "WHATSAPP_PHONE_NUMBER_ID": sender])
        let optedOut = e2e.recipient(1), other = e2e.recipient(2)

        #expect(try await statuses.post(Self.inbound("Stop", from: String(optedOut.dropFirst()), to: sender)) == 200)
        let added = try await statuses.events.take(e2e.inspector, expecting: 2)
        let optOutEvent = try #require(added.first { $0.routingKey == "optout.added" }, "events: \(added.map(\.routingKey))")
        #expect(optOutEvent.body["recipient"]?.stringValue == optedOut)
        #expect(optOutEvent.body["sender"]?.stringValue == sender)
        #expect(optOutEvent.body["source"]?.stringValue == "keyword")

        let check = try TestServices.run(TestServices.executable, ["optout", "check", "--sender", sender, optedOut, other], environment: e2e.environment)
        #expect(check.output.split(separator: "\n").map(String.init) == ["\(optedOut) listed", "\(other) not listed"], "\(check.output)")

        try await e2e.publish([
            template(e2e, 1, to: optedOut),                                                        // marketing, listed: suppressed
            template(e2e, 2, to: optedOut, name: "order_update", extra: #","category":"utility""#), // utility: sent
            template(e2e, 3, to: other),                                                           // not listed: sent
            template(e2e, 4, to: optedOut, extra: #","phoneNumberId":"\#(otherSender)""#),          // another sender's list: sent
        ])
        try await e2e.waitUntilFinished(4, by: [worker])
        let events = try await outboundEvents.take(e2e.inspector, expecting: 4)
        let byID = Dictionary(events.map { ($0.body["internalId"]?.stringValue ?? "?", $0) }) { first, _ in first }
        let suppressed = try #require(byID[e2e.id(1)])
        #expect(suppressed.routingKey == "outbound.suppressed")
        #expect(suppressed.body["status"]?.stringValue == "suppressed")
        #expect(suppressed.body["wamid"] == nil, "a suppressed message was never sent: no wamid field")
        #expect(suppressed.body["phoneNumberId"]?.stringValue == sender)
        #expect([2, 3, 4].map { byID[e2e.id($0)]?.routingKey } == ["outbound.sent", "outbound.sent", "outbound.sent"], "\(events.map(\.routingKey))")
        let requested = e2e.server.requests.compactMap { $0.json?["biz_opaque_callback_data"]?.stringValue }
        #expect(!requested.contains(e2e.id(1)), "no request for the suppressed message")
        #expect(Set(requested).isSuperset(of: [e2e.id(2), e2e.id(3), e2e.id(4)]))

        #expect(try await statuses.post(Self.inbound("START", from: String(optedOut.dropFirst()), to: sender)) == 200)
        let removed = try await statuses.events.take(e2e.inspector, expecting: 2)
        #expect(removed.contains { $0.routingKey == "optout.removed" && $0.body["recipient"]?.stringValue == optedOut }, "\(removed.map(\.routingKey))")
        try await e2e.publish([template(e2e, 5, to: optedOut)])
        try await e2e.waitUntilFinished(5, by: [worker])
        #expect(try await outboundEvents.take(e2e.inspector, expecting: 1).first?.routingKey == "outbound.sent", "marketing goes again after START")

        try await worker.stop()
        await e2e.inspector.delete([outboundEvents.queue])
        try await statuses.cleanUp()
    }

    @Test func theCommandManagesTheListsAndPublishesEachChange() async throws {
        let e2e = try await EndToEndHarness()
        let events = EventsTests.EventQueue()
        try await events.bind(e2e.inspector)
        let sender = String(UInt64.random(in: 100_000_000_000...999_999_999_999))
        let number = "+55 11 9\(Int.random(in: 1000_0000...9999_9999))"
        let normalised = "+" + number.filter(\.isNumber)
        let environment = e2e.environment.merging(["OUTBOUND_EVENTS_EXCHANGE": events.exchange]) { $1 }
        func optout(_ arguments: [String]) throws -> (status: Int32, output: String) {
            try TestServices.run(TestServices.executable, ["optout"] + arguments, environment: environment)
        }

        #expect(try optout(["add", "--sender", sender, number]).output.contains("\(normalised) added"))
        #expect(try optout(["add", "--sender", sender, number]).output.contains("\(normalised) already listed"))
        #expect(try optout(["list", "--sender", sender]).output.split(separator: "\n").map(String.init) == [normalised])
        #expect(try optout(["check", normalised]).output.contains("\(normalised) not listed"), "the list for all senders does not hold it")
        #expect(try optout(["remove", "--sender", sender, normalised]).output.contains("\(normalised) removed"))
        #expect(try optout(["check", "--sender", sender, normalised]).output.contains("\(normalised) not listed"))
        let bad = try optout(["add", "12"])
        #expect(bad.status != 0)
        #expect(bad.output.contains("12: not an E.164 number"), "\(bad.output)")

        // The events broker unreachable: nothing changes (the number was added and its event lost before;
        // a second run found it listed already and published nothing).
        let unreachable = try TestServices.run(TestServices.executable, ["optout", "add", "--sender", sender, normalised],
                                               environment: environment.merging(["RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:\(freePort())/%2F"]) { $1 })
        #expect(unreachable.status == 3 && unreachable.output.contains("unreachable, nothing changed"), "\(unreachable.output)")
        #expect(try optout(["check", "--sender", sender, normalised]).output.contains("\(normalised) not listed"))
        #expect(try optout(["add", "--sender", sender, normalised]).output.contains("\(normalised) added"), "added once the broker is there")

        // A pipeline without `events:` has its lists managed all the same, no event published.
        let shipped = try String(contentsOf: TestServices.repository.appendingPathComponent("pipelines/outbound.yaml"), encoding: .utf8)
        let eventsStart = try #require(shipped.range(of: "\nevents:")), resourcesStart = try #require(shipped.range(of: "\nresources:"))
        let withoutEvents = e2e.folder.appendingPathComponent("no-events.yaml")
        try (String(shipped[..<eventsStart.lowerBound]) + String(shipped[resourcesStart.lowerBound...])).write(to: withoutEvents, atomically: true, encoding: .utf8)
        let quiet = try TestServices.run(TestServices.executable, ["optout", "add", "--pipeline", withoutEvents.path, "--sender", sender, "+5511900000001"],
                                         environment: environment.merging(["PIPELINE_ENV": ""]) { $1 })
        #expect(quiet.status == 0 && quiet.output.contains("+5511900000001 added"), "\(quiet.output)")

        let published = try await events.take(e2e.inspector, expecting: 3)
        #expect(published.map(\.routingKey) == ["optout.added", "optout.removed", "optout.added"], "one event per change, none for a change that changed nothing")
        #expect(published.allSatisfy { $0.body["source"]?.stringValue == "cli" && $0.body["sender"]?.stringValue == sender && $0.body["recipient"]?.stringValue == normalised })

        await e2e.inspector.delete([events.queue])
        await e2e.cleanUp()
    }
}
