import AMQPClient
import Foundation
import PipelineKit
import Testing
import TestSupport

/// Outcome events end to end (SPEC 9): one event per message on a queue bound to the exchange,
/// each confirmed before its message is acknowledged.
@Suite(.serialized) struct EventsTests {
    /// A queue bound to the test's own events exchange, and the events taken from it.
    struct EventQueue {
        let exchange = uniqueName("events")
        let queue = uniqueName("events.seen")

        func bind(_ inspector: QueueInspector) async throws {
            try await inspector.publisher.declare(AMQPExchangeDeclaration(name: exchange))
            try await inspector.publisher.declare(AMQPQueueDeclaration(name: queue))
            try await inspector.publisher.bind(AMQPBinding(queue: queue, exchange: exchange, routingKey: "#"))
        }

        func take(_ inspector: QueueInspector, expecting count: Int, timeout: Duration = .seconds(30)) async throws -> [(routingKey: String, body: JSONValue)] {
            try await inspector.drain(queue, expecting: count, timeout: timeout).map { ($0.routingKey, (try? JSONValue(parsing: $0.body)) ?? .null) }
        }
    }

    @Test func everyMessageGivesExactlyOneEventWithItsOutcome() async throws {
        let e2e = try await EndToEndHarness()
        let events = EventQueue()
        try await events.bind(e2e.inspector)
        e2e.server.answerRequests { request in
            request.recipient.hasSuffix("7") ? .error(status: 400, code: 131026, message: "Message undeliverable") : .success
        }
        let worker = try await e2e.startWorker(extra: ["OUTBOUND_EVENTS_EXCHANGE": events.exchange, "WHATSAPP_THROUGHPUT": "1000"])
        var bodies: [[UInt8]] = []
        for number in 0..<150 {
            let metadata = #","metadata":{"order":"o-\#(number)"}"#
            bodies.append(number % 10 == 3 ? e2e.message(number, extra: metadata + #","expiresAt":"2020-01-01T00:00:00Z""#) : e2e.message(number, extra: metadata))
        }
        for number in 0..<50 { bodies.append(e2e.message(number)) }   // 50 duplicates of the first 50
        try await e2e.publish(Array(bodies[0..<150]))
        try await poll("the first 150 settled, each with its event") { try await e2e.inspector.depth(events.queue) >= 150 }
        try await e2e.publish(Array(bodies[150...]))
        let taken = try await events.take(e2e.inspector, expecting: 200)
        #expect(taken.count == 200, "one event per message")
        var byID: [String: [JSONValue]] = [:]
        for event in taken { byID[event.body["internalId"]?.stringValue ?? "?", default: []].append(event.body) }
        for number in 0..<150 {
            let id = e2e.id(number)
            let mine = byID[id] ?? []
            let expected = number % 10 == 3 ? "expired" : (number % 10 == 7 ? "failed" : "sent")
            let first = mine.first { $0["status"]?.stringValue != "duplicate" }
            #expect(first?["status"]?.stringValue == expected, "\(id): \(mine)")
            #expect(first?["metadata"]?["order"]?.stringValue == "o-\(number)")
            #expect(first?["to"]?.stringValue == e2e.recipient(number))
            #expect(first?["phoneNumberId"]?.stringValue == "1055" || expected == "expired")
            if expected == "sent" { #expect(first?["wamid"]?.stringValue?.hasPrefix("wamid.standin.") == true) }
            if expected == "failed" { #expect(first?["error"]?["code"] == .number(131026) && first?["error"]?["step"]?.stringValue == "dispatch") }
            if expected == "expired" { #expect(first?["error"]?["message"]?.stringValue?.hasPrefix("expired") == true) }
            if number < 50 {
                let duplicate = mine.first { $0["status"]?.stringValue == "duplicate" }
                #expect(mine.count == 2)
                if expected == "sent" { #expect(duplicate?["wamid"] == first?["wamid"], "a duplicate carries the first send's wamid") }
            } else {
                #expect(mine.count == 1, "\(id): \(mine.count) events")
            }
        }
        #expect(Set(taken.map(\.routingKey)).isSubset(of: ["outbound.sent", "outbound.failed", "outbound.expired", "outbound.duplicate"]))
        let check = try e2e.eventSchemaCheck(taken.map(\.body))
        #expect(check.contains("events ok"), "every event matches `schema --events`: \(check)")
        #expect(!worker.log.contains(EndToEndHarness.token))
        try await worker.stop()
        await e2e.inspector.delete([events.queue])
        await e2e.cleanUp()
    }

    /// The event is confirmed before the message is acknowledged: with the broker stopped mid-run,
    /// no message ends acknowledged without its event, and none is sent twice.
    @Test func noMessageIsAcknowledgedWithoutItsEventAcrossABrokerRestart() async throws {
        let e2e = try await EndToEndHarness()
        let events = EventQueue()
        try await events.bind(e2e.inspector)
        e2e.server.answer { _, _ in .stall(.milliseconds(5)) }
        let worker = try await e2e.startWorker(extra: ["OUTBOUND_EVENTS_EXCHANGE": events.exchange, "WHATSAPP_THROUGHPUT": "1000"])
        try await e2e.publish((0..<600).map(e2e.textMessage))
        try await poll("some sent") { e2e.server.requests.count >= 150 }
        try TestServices.services("restart", "rabbitmq")
        try await poll("all 600 sent after the restart", timeout: .seconds(120)) { e2e.requestsByRecipient.count >= 600 }
        try await e2e.waitUntilDrained()
        // Each message's event is published before it is acknowledged, so the last ones may come after
        // the queue looks drained: take the events as they come until every id has one, within a
        // bound (messages redelivered after the restart report `duplicate` too; those are taken as well).
        let ids = Set((0..<600).map(e2e.id))
        var taken: [(routingKey: String, body: JSONValue)] = []
        var withEvents = Set<String>()
        try? await poll("an event for each of the 600", timeout: .seconds(30)) {
            let ready = try await e2e.inspector.depth(events.queue)
            if ready > 0 {
                taken += try await events.take(e2e.inspector, expecting: ready, timeout: .seconds(10))
                withEvents = Set(taken.compactMap { $0.body["internalId"]?.stringValue })
            }
            return withEvents.isSuperset(of: ids)
        }
        let without = ids.subtracting(withEvents).sorted()
        #expect(without.isEmpty, "every message has its event; without: \(without), log \(worker.logPath)")
        #expect(e2e.requestsByRecipient.values.allSatisfy { $0 == 1 }, "none sent twice")
        #expect(taken.allSatisfy { ["outbound.sent", "outbound.duplicate"].contains($0.routingKey) })
        try await worker.stop()
        await e2e.inspector.delete([events.queue])
        await e2e.cleanUp()
    }

    /// Tenants: each sender with its own token; a token changed in `.env` is used after SIGHUP.
    @Test func eachSenderSendsWithItsOwnTokenAndARotatedTokenIsUsedAfterSighup() async throws {
        let e2e = try await EndToEndHarness()
        try e2e.writeVariant(EndToEndHarness.variant.replacingOccurrences(of: "with: { timeout: 2s }", with: #"with: { timeout: 2s, access_tokens: { "111": "${WA_TOKEN_111}", "222": "${WA_TOKEN_222}" } }"#))
        try "WA_TOKEN_111=token-one\nWA_TOKEN_222=token-two\n".write(to: e2e.folder.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        let worker = try await e2e.startWorker(directory: e2e.folder)
        try await e2e.publish([e2e.message(1, sender: "111"), e2e.message(2, sender: "222"), e2e.message(3)])
        try await poll("three sent") { e2e.server.requests.count == 3 }
        let tokens = Dictionary(uniqueKeysWithValues: e2e.server.requests.map { ($0.sender, $0.authorization ?? "") })
        #expect(tokens == ["111": "Bearer token-one", "222": "Bearer token-two", "1055": "Bearer \(EndToEndHarness.token)"])
        try "WA_TOKEN_111=token-one-rotated\nWA_TOKEN_222=token-two\n".write(to: e2e.folder.appendingPathComponent(".env"), atomically: true, encoding: .utf8)
        worker.signal(SIGHUP)
        try await poll("reloaded") { worker.log.contains("pipeline reloaded") }
        try await e2e.publish([e2e.message(4, sender: "111")])
        try await poll("the fourth sent") { e2e.server.requests.count == 4 }
        #expect(e2e.server.requests.last?.authorization == "Bearer token-one-rotated")
        #expect(!worker.log.contains("token-one"), "tokens are never logged")
        try await worker.stop()
        await e2e.cleanUp()
    }
}
