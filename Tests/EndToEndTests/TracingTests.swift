import AMQPClient
import Foundation
import PipelineKit
import Synchronization
import Testing
import TestSupport

/// Traces (swift-otel, OTLP/HTTP to a local receiver): a message published with a W3C
/// `traceparent` is one trace from that publish through the steps and the Cloud API call to its
/// delivery status, handled by the statuses pipeline; its events carry the trace on.
@Suite(.serialized) struct TracingTests {
    /// The variables that turn tracing on, exporting to `endpoint` often; with the variables of
    /// swift-otel's other signals set as a deployment may have them (they must not start its metrics
    /// or logs: a second bootstrap of either would end the process).
    static func tracing(to endpoint: String) -> [String: String] {
        ["OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json", "OTEL_BSP_SCHEDULE_DELAY": "100",
         "OTEL_SDK_DISABLED": "false", "OTEL_METRICS_EXPORTER": "otlp", "OTEL_LOGS_EXPORTER": "otlp"]
    }

    @Test func aPublishedMessageIsOneTraceFromItsTraceparentToItsDeliveryStatus() async throws {
        let receiver = OTLPReceiver()
        let endpoint = try await receiver.start()
        let statuses = try await WebhookTests.Statuses()
        let e2e = statuses.e2e
        let outboundEvents = EventsTests.EventQueue()
        try await outboundEvents.bind(e2e.inspector)
        let accepted = AcceptedSends()
        e2e.server.onAccepted { accepted.add($0) }
        let worker = try await e2e.startWorker(extra: Self.tracing(to: endpoint).merging(["OUTBOUND_EVENTS_EXCHANGE": outboundEvents.exchange]) { $1 })
        try await statuses.start(Self.tracing(to: endpoint))

        // The upstream service's publish span.
        let traceID = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        let publishSpan = "00f067aa0ba902b7"
        try await e2e.inspector.publish([e2e.textMessage(1)], to: e2e.queue, headers: ["traceparent": .string("00-\(traceID)-\(publishSpan)-01")])
        let event = try await e2e.inspector.drain(outboundEvents.queue, expecting: 1)
        #expect(event.count == 1)
        #expect(Self.traceID(of: event.first) == traceID, "the outcome event carries the trace on: \(String(describing: event.first?.properties.headers))")
        guard let send = accepted.all.first else {
            Issue.record("not sent")
            return
        }
        // Meta posts the status; the statuses pipeline continues the send's trace from the wamid mapping.
        #expect(try await statuses.post(WebhookTests.statuses([(send.wamid, "delivered", send.callbackData)])) == 200)
        let statusEvent = try await statuses.events.take(e2e.inspector, expecting: 1)
        #expect(statusEvent.map(\.routingKey) == ["delivery.delivered"])

        do {
            // (Each worker exports on its own schedule: the status's span may come before the send's last ones.)
            try await poll("the delivery's, the last step's and the status's spans exported") {
                let names = Set(receiver.spans.filter { $0.traceID == traceID }.map(\.name))
                return names.isSuperset(of: ["process whatsapp-outbound", "mark_completed", "delivery.delivered"])
            }
        } catch {
            let metrics = await statuses.worker?.text("/metrics") ?? ""
            Issue.record("metrics: \(metrics.split(separator: "\n").filter { $0.contains("webhook") && !$0.hasPrefix("#") })")
            Issue.record("spans exported: \(receiver.spans.map { "\($0.name) \($0.traceID == traceID ? "in" : "outside") the trace" }); statuses log: \(statuses.worker?.log.suffix(3000) ?? "")")
            throw error
        }
        let trace = receiver.spans.filter { $0.traceID == traceID }
        let byID = Dictionary(trace.map { ($0.spanID, $0) }) { first, _ in first }
        guard let process = trace.first(where: { $0.name == "process whatsapp-outbound" }) else {
            Issue.record("no span for the delivery: \(trace.map(\.name))")
            return
        }
        #expect(process.parentSpanID == publishSpan, "the delivery's span continues the publish")
        #expect(process.kind == 5 && process.attributes["outbound.internal_id"] == e2e.id(1) && process.attributes["outbound.outcome"] == "completed")
        let steps = trace.filter { $0.parentSpanID == process.spanID }.map(\.name)
        for step in ["validate", "idempotency", "transform", "dispatch", "mark_completed"] {
            #expect(steps.contains(step), "a span for step \(step): \(steps)")
        }
        let call = trace.first { $0.kind == 3 }
        #expect(call?.name == "POST /{version}/{phone_number_id}/messages")
        #expect(call?.attributes["http.response.status_code"] == "200" && call?.attributes["whatsapp.wamid"] == send.wamid)
        #expect(call.flatMap { $0.parentSpanID.flatMap { byID[$0] } }?.name == "dispatch", "the Cloud API call under the dispatch step")
        let status = trace.first { $0.name == "delivery.delivered" }
        #expect(status?.parentSpanID == process.spanID, "the delivery status in the send's trace, under its delivery")
        #expect(status?.attributes["whatsapp.wamid"] == send.wamid)
        #expect(status?.links.isEmpty == false, "linked to the webhook's own trace")
        #expect(worker.log.contains(#""trace_id":"\#(traceID)""#), "the message's log lines carry its trace_id")

        try await worker.stop()
        receiver.stop()
        try await statuses.cleanUp()
        await e2e.inspector.delete([outboundEvents.queue])
    }

    /// A send whose answer was lost after Meta accepted it goes in doubt, and the `sent` status that
    /// settles it comes before any wamid mapping exists: it is in the send's trace all the same (the
    /// trace the send's claim held), and so is the `delivered` after it.
    @Test func aSendInDoubtSettledByItsStatusIsInItsTrace() async throws {
        let receiver = OTLPReceiver()
        let endpoint = try await receiver.start()
        let scenario = try await InDoubtTests.Scenario(acceptedLost: 0..<1, unacceptedLost: 0..<0)
        let e2e = scenario.e2e
        try await scenario.statuses.start(Self.tracing(to: endpoint))
        let worker = try await scenario.startOutbound(Self.tracing(to: endpoint))
        let traceID = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        try await e2e.inspector.publish([e2e.textMessage(0)], to: e2e.queue, headers: ["traceparent": .string("00-\(traceID)-00f067aa0ba902b7-01")])
        let events = try await scenario.outboundEvents.take(e2e.inspector, expecting: 1)
        #expect(events.first?.body["resolvedBy"]?.stringValue == "status", "settled by its status: \(events.map(\.body))")
        do {
            try await poll("both statuses' spans exported in the send's trace") {
                Set(receiver.spans.filter { $0.traceID == traceID }.map(\.name)).isSuperset(of: ["process whatsapp-outbound", "delivery.sent", "delivery.delivered"])
            }
        } catch {
            Issue.record("spans exported: \(receiver.spans.map { "\($0.name) \($0.traceID == traceID ? "in" : "outside") the trace" })")
            throw error
        }
        let trace = receiver.spans.filter { $0.traceID == traceID }
        let deliveries = Set(trace.filter { $0.name == "process whatsapp-outbound" }.map(\.spanID))
        for name in ["delivery.sent", "delivery.delivered"] {
            #expect(trace.first { $0.name == name }?.parentSpanID.map(deliveries.contains) == true, "\(name) under the send's delivery")
        }
        try await worker.stop()
        receiver.stop()
        try await scenario.cleanUp()
    }

    /// A retry goes round the broker as a copy with the message's headers: its next attempt is in
    /// the same trace, under the same publish.
    @Test func aRetriedMessagesAttemptsAreInOneTrace() async throws {
        let receiver = OTLPReceiver()
        let endpoint = try await receiver.start()
        let e2e = try await EndToEndHarness()
        e2e.server.answer { number, _ in number == 1 ? .error(status: 503, code: nil, message: "Service unavailable") : .success }
        let worker = try await e2e.startWorker(extra: Self.tracing(to: endpoint))
        let traceID = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        try await e2e.inspector.publish([e2e.textMessage(1)], to: e2e.queue, headers: ["traceparent": .string("00-\(traceID)-00f067aa0ba902b7-01")])
        try await poll("both attempts exported") { receiver.spans.filter { $0.traceID == traceID && $0.name.hasPrefix("process ") }.count >= 2 }
        let attempts = receiver.spans.filter { $0.traceID == traceID && $0.name.hasPrefix("process ") }.sorted { ($0.attributes["outbound.attempt"] ?? "") < ($1.attributes["outbound.attempt"] ?? "") }
        #expect(attempts.map { $0.attributes["outbound.attempt"] } == ["1", "2"])
        #expect(attempts.map { $0.attributes["outbound.outcome"] } == ["retry", "completed"])
        #expect(attempts.allSatisfy { $0.parentSpanID == "00f067aa0ba902b7" }, "each attempt under the upstream publish")
        let calls = receiver.spans.filter { $0.traceID == traceID && $0.kind == 3 }.map { $0.attributes["http.response.status_code"] }
        #expect(calls.sorted { ($0 ?? "") < ($1 ?? "") } == ["200", "503"], "each Cloud API call with its HTTP status")
        try await worker.stop()
        receiver.stop()
        await e2e.cleanUp()
    }

    /// A message published without a trace is one all the same: the trace its first attempt began
    /// goes on in its retry copy (the next attempt under the first) and in its dead letter; a
    /// `tracestate` the tracer cannot read does not lose the upstream's `traceparent` (W3C).
    @Test func aMessageWithoutATraceKeepsTheOneItBeganAcrossAttemptsAndItsLetter() async throws {
        let receiver = OTLPReceiver()
        let endpoint = try await receiver.start()
        let e2e = try await EndToEndHarness()
        let retried = e2e.recipient(1).suffix(9), refused = e2e.recipient(2).suffix(9)
        let failedOnce = Mutex(false)
        e2e.server.answerRequests { request in
            if request.recipient.hasSuffix(refused) { return .error(status: 400, code: 131026, message: "Message undeliverable") }
            if request.recipient.hasSuffix(retried), failedOnce.withLock({ failed in defer { failed = true }; return !failed }) {
                return .error(status: 503, code: nil, message: "Service unavailable")
            }
            return .success
        }
        let worker = try await e2e.startWorker(extra: Self.tracing(to: endpoint))
        try await e2e.publish([e2e.textMessage(1), e2e.textMessage(2)])
        let upstream = (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined()
        try await e2e.inspector.publish([e2e.textMessage(3)], to: e2e.queue,
                                        headers: ["traceparent": .string("00-\(upstream)-00f067aa0ba902b7-01"), "tracestate": .string("a=1,,b=2")])
        let letters = try await e2e.inspector.drain("\(e2e.queue).dead", expecting: 1)
        func processSpans(of number: Int) -> [OTLPReceiver.Span] {
            receiver.spans.filter { $0.name.hasPrefix("process ") && $0.attributes["outbound.internal_id"] == e2e.id(number) }
                .sorted { ($0.attributes["outbound.attempt"] ?? "") < ($1.attributes["outbound.attempt"] ?? "") }
        }
        try await poll("every attempt's delivery span exported") { processSpans(of: 1).count == 2 && processSpans(of: 2).count == 1 && processSpans(of: 3).count == 1 }

        let attempts = processSpans(of: 1)
        #expect(attempts.map { $0.attributes["outbound.outcome"] } == ["retry", "completed"])
        #expect(attempts[1].traceID == attempts[0].traceID && attempts[1].parentSpanID == attempts[0].spanID,
                "the second attempt in the trace the first began, under it: \(attempts.map { ($0.traceID, $0.spanID, $0.parentSpanID ?? "-") })")
        let letter = processSpans(of: 2)[0]
        #expect(letter.isError && letter.attributes["outbound.outcome"] == "dead_letter", "a dead-lettered delivery's span says it failed")
        #expect(letters.first?.properties.headers["traceparent"]?.stringValue == "00-\(letter.traceID)-\(letter.spanID)-01",
                "the letter names the trace of its delivery: \(String(describing: letters.first?.properties.headers))")
        #expect(processSpans(of: 3)[0].traceID == upstream && processSpans(of: 3)[0].parentSpanID == "00f067aa0ba902b7",
                "an unreadable tracestate leaves the traceparent continued")
        try await worker.stop()
        receiver.stop()
        await e2e.cleanUp()
    }

    /// With a sampler that is always off the worker has no trace of its own to give: a letter keeps
    /// the headers its message came with, even ones no tracer reads (review: they were stripped).
    @Test func underASamplerAlwaysOffALetterKeepsTheHeadersItCameWith() async throws {
        let receiver = OTLPReceiver()
        let endpoint = try await receiver.start()
        let e2e = try await EndToEndHarness()
        e2e.server.answer { _, _ in .error(status: 400, code: 131026, message: "Message undeliverable") }
        let worker = try await e2e.startWorker(extra: Self.tracing(to: endpoint).merging(["OTEL_TRACES_SAMPLER": "always_off"]) { $1 })
        try await e2e.inspector.publish([e2e.textMessage(1)], to: e2e.queue, headers: ["traceparent": .string("not-a-traceparent"), "tracestate": .string("a=1")])
        let letters = try await e2e.inspector.drain("\(e2e.queue).dead", expecting: 1)
        #expect(letters.first?.properties.headers["traceparent"]?.stringValue == "not-a-traceparent")
        #expect(letters.first?.properties.headers["tracestate"]?.stringValue == "a=1")
        try await worker.stop()
        receiver.stop()
        await e2e.cleanUp()
    }

    /// A message whose upstream did not sample its trace (flags `00`; the default sampler follows the
    /// parent): no span of it is exported, and its outcome event carries the trace on, unsampled.
    @Test func aSampledOutMessageExportsNothingAndItsEventCarriesTheTraceOn() async throws {
        let receiver = OTLPReceiver()
        let endpoint = try await receiver.start()
        let e2e = try await EndToEndHarness()
        let events = EventsTests.EventQueue()
        try await events.bind(e2e.inspector)
        let worker = try await e2e.startWorker(extra: Self.tracing(to: endpoint).merging(["OUTBOUND_EVENTS_EXCHANGE": events.exchange]) { $1 })
        let traceIDs = (0..<2).map { _ in (0..<16).map { _ in String(format: "%02x", UInt8.random(in: 0...255)) }.joined() }
        try await e2e.inspector.publish([e2e.textMessage(1)], to: e2e.queue, headers: ["traceparent": .string("00-\(traceIDs[0])-00f067aa0ba902b7-00")])
        let outcome = try await e2e.inspector.drain(events.queue, expecting: 1)
        #expect(Self.traceID(of: outcome.first) == traceIDs[0] && outcome.first?.properties.headers["traceparent"]?.stringValue?.hasSuffix("-00") == true,
                "the sampled-out message's event carries its trace, unsampled: \(outcome.map(\.properties.headers))")
        // A sampled message after it: once its spans are exported, the first one's would have been
        // (they would have ended before this one began; one exporter, in the order spans end).
        try await e2e.inspector.publish([e2e.textMessage(2)], to: e2e.queue, headers: ["traceparent": .string("00-\(traceIDs[1])-00f067aa0ba902b7-01")])
        try await poll("the sampled message's delivery span exported") {
            receiver.spans.contains { $0.traceID == traceIDs[1] && $0.name.hasPrefix("process ") }
        }
        #expect(!receiver.spans.contains { $0.traceID == traceIDs[0] }, "no span of the sampled-out message")
        try await poll("the sampled-out message's log lines carrying its trace_id") { worker.log.contains(#""trace_id":"\#(traceIDs[0])""#) }
        try await worker.stop()
        receiver.stop()
        await e2e.cleanUp()
        await e2e.inspector.delete([events.queue])
    }

    /// The trace id of a delivery's `traceparent` header.
    static func traceID(of delivery: AMQPDelivery?) -> String? {
        guard let header = delivery?.properties.headers["traceparent"]?.stringValue else { return nil }
        let parts = header.split(separator: "-")
        return parts.count == 4 ? String(parts[1]) : nil
    }

    /// The sends the stand-in accepted.
    final class AcceptedSends: Sendable {
        private let accepted = Mutex<[CloudAPIStandInServer.Accepted]>([])
        func add(_ send: CloudAPIStandInServer.Accepted) { accepted.withLock { $0.append(send) } }
        var all: [CloudAPIStandInServer.Accepted] { accepted.withLock { $0 } }
    }
}
