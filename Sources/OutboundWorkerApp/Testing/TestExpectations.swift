import Foundation
import IdempotencyPlugin
import PipelineKit
import RedisPlugin
import WhatsAppPlugin

/// Compares what a case expects with what the pipeline did, naming the first difference of each kind.
enum TestExpectations {
    /// Whether the outcome a case expects names what happened. SPEC 7 has four words (completed,
    /// duplicate, dead_letter, retry); the worker tells two of them apart further: an expired
    /// message is dead-lettered (SPEC 8), so `dead_letter` matches `expired`; a sender-side failure
    /// (SPEC 6: "retried, not dead-lettered") is a `requeue` that pauses its senders, so `retry`
    /// matches that one — not a requeue for a key in flight or Redis down (a case that expects a
    /// counted retry and says `attempts:` tells the two apart). `expired` and `requeue` match only
    /// themselves.
    static func outcome(_ expected: String, matches decision: Decision) -> Bool {
        let actual = decision.outcomeName
        if expected == actual || (expected == "dead_letter" && actual == "expired") { return true }
        guard expected == "retry", case .requeue(_, _, _, .some) = decision else { return false }
        return true
    }

    static func compare(_ testCase: PipelineTestCase, result: PipelineTestRunner.MessageResult, sent: PreparedRequest?) -> [String] {
        let expect = testCase.expect
        let decision = result.decision
        var failures: [String] = []
        let reason = decision.reason.map { " (\($0))" } ?? ""
        if let outcome = expect.outcome, !Self.outcome(outcome, matches: decision) {
            failures.append("outcome: expected \(outcome), got \(decision.outcomeName)\(reason)")
        }
        if let expected = expect.request {
            if let sent {
                let actual = (try? JSONValue(parsing: sent.body)) ?? .null
                if let difference = actual.firstDifference(from: expected, path: "request") {
                    let got = difference.actual?.encodedString() ?? "nothing"
                    failures.append("\(difference.path): expected \(difference.expected.encodedString()), got \(got)")
                }
            } else {
                failures.append("request: expected a request to be sent, none was")
            }
        }
        if let expectedSent = expect.sent, expectedSent != (sent != nil) {
            failures.append("sent: expected \(expectedSent), got \(sent != nil)")
        }
        if let error = expect.error, !(decision.reason ?? "").contains(error) {
            failures.append("error: expected a reason containing \"\(error)\", got \(decision.reason.map { "\"\($0)\"" } ?? "none")")
        }
        let (step, attempts, delay) = details(of: decision, attempt: testCase.attempt)
        if let expected = expect.step, expected != step {
            failures.append("step: expected \(expected), got \(step ?? "none")")
        }
        if let expected = expect.attempts, expected != attempts {
            failures.append("attempts: expected \(expected), got \(attempts.map(String.init) ?? "none")")
        }
        if let expected = expect.delay, expected != delay {
            failures.append("delay: expected \(DurationParser.format(expected)), got \(delay.map(DurationParser.format) ?? "none")")
        }
        if let expected = expect.response, expected != result.response {
            failures.append("response: expected \(expected), got \(result.response.map(String.init) ?? "none")")
        }
        if let expected = expect.events {
            let got = result.events
            if got.count != expected.count {
                failures.append("events: expected \(expected.count) (\(expected.map(\.routingKey).joined(separator: ", "))), got \(got.count) (\(got.map(\.routingKey).joined(separator: ", ")))")
            } else {
                for (index, (wanted, event)) in zip(expected, got).enumerated() {
                    if wanted.routingKey != event.routingKey {
                        failures.append("events[\(index)].routing_key: expected \(wanted.routingKey), got \(event.routingKey)")
                    } else if let body = wanted.body, let difference = event.body.firstDifference(from: body, path: "events[\(index)].body") {
                        failures.append("\(difference.path): expected \(difference.expected.encodedString()), got \(difference.actual?.encodedString() ?? "nothing")")
                    }
                }
            }
        }
        if let expected = expect.waited {
            let waited = result.waits.map(\.reason.rawValue)
            if waited != expected { failures.append("waited: expected [\(expected.joined(separator: ", "))], got [\(waited.joined(separator: ", "))]") }
        }
        return failures
    }

    /// The requests of the whole case: how many, and when each went out (within a millisecond).
    static func compareRequests(_ expect: PipelineTestCase.Expectation, received: [StandInCloudAPI.Received], since start: Date, copies: [[UInt8]]) -> [String] {
        var failures: [String] = []
        if let expected = expect.sentOrder {
            // A copy is known by its internalId, which the request carries as biz_opaque_callback_data.
            let ids = copies.map { (try? JSONValue(parsing: $0))?["internalId"]?.stringValue }
            let actual = received.map { request in
                let id = (try? JSONValue(parsing: request.request.body))?["biz_opaque_callback_data"]?.stringValue
                return ids.firstIndex { $0 != nil && $0 == id }.map { $0 + 1 } ?? 0
            }
            if actual != expected {
                failures.append("sent_order: expected \(expected.map(String.init).joined(separator: ", ")), got \(actual.map(String.init).joined(separator: ", "))")
            }
        }
        if let expected = expect.requests, expected != received.count {
            failures.append("requests: expected \(expected), got \(received.count)")
        }
        if let expected = expect.sentAt {
            let actual = received.map { Duration.milliseconds(Int64(($0.at.timeIntervalSince(start) * 1000).rounded())) }
            let matches = actual.count == expected.count && zip(actual, expected).allSatisfy { abs(($0 - $1).milliseconds) <= 1 }
            if !matches {
                failures.append("sent_at: expected [\(expected.map(DurationParser.format).joined(separator: ", "))], got [\(actual.map(DurationParser.format).joined(separator: ", "))]")
            }
        }
        return failures
    }

    /// The failing step, the `x-attempts` the source would publish, and the delay, as the RabbitMQ source records them.
    static func details(of decision: Decision, attempt: Int) -> (step: String?, attempts: Int?, delay: Duration?) {
        switch decision {
        case .ack: (decision.stepName, nil, nil)
        case .retry(let after, let next, _): (decision.stepName, next - 1, after)
        case .deadLetter: (decision.stepName, attempt, nil)
        case .requeue(let after, _, _, _): (decision.stepName, attempt - 1, after == .zero ? nil : after)
        }
    }

    static func compareKey(_ expected: PipelineTestCase.KeyExpectation, key: String?, store: MemoryStore) async -> [String] {
        guard let key else { return ["key: the pipeline has no idempotency step, or the input lacks its key fields"] }
        let stored = try? await store.read(key)
        let state = stored.flatMap { try? JSONValue(parsing: Array($0.value.utf8)) }
        let status = state?["status"]?.stringValue ?? (stored == nil ? "absent" : "unreadable")
        var failures: [String] = []
        if let expectedStatus = expected.status, expectedStatus != status {
            failures.append("key \(key): expected \(expectedStatus), got \(status)")
        }
        if let ttl = expected.ttl {
            let actual = stored?.ttl
            if let actual, actual <= ttl, actual > ttl - .seconds(5) {} else {
                failures.append("key \(key) ttl: expected \(DurationParser.format(ttl)) (within 5s), got \(actual.map(DurationParser.format) ?? "none")")
            }
        }
        if let wamid = expected.wamid, state?["wamid"]?.stringValue != wamid {
            failures.append("key \(key) wamid: expected \(wamid), got \(state?["wamid"]?.stringValue ?? "none")")
        }
        return failures
    }
}
