import PipelineKit
import WhatsAppPlugin

/// One case of a pipeline test file, parsed and checked for unknown keys.
struct PipelineTestCase {
    struct KeyExpectation {
        var status: String?
        var ttl: Duration?
        var wamid: String?
    }

    struct Expectation {
        var outcome: String?
        var request: JSONValue?
        var sent: Bool?
        var error: String?
        var step: String?
        var attempts: Int?
        var delay: Duration?
        var key: KeyExpectation?
        /// The reasons the message waited for, in order (`throughput`, `pair_hold`, `paused`).
        var waited: [String]?
        /// When each request went out, from the start of the case (by the virtual clock).
        var sentAt: [Duration]?
        /// The copies (numbered from 1, in the order they were handed out) in the order the Cloud API received them.
        var sentOrder: [Int]?
        /// How many requests the case made.
        var requests: Int?
        /// What a source that answers its senders answered (an HTTP status).
        var response: Int?
        /// The events published, each a routing key and a subset of its body, in order.
        var events: [(routingKey: String, body: JSONValue?)]?
    }

    var name: String
    var location: SourceLocation
    var body: [UInt8]
    var input: JSONValue?
    var attempt: Int
    var advance: Duration?
    var redisAvailable: Bool
    /// A key state to write before the case, as another worker would have left it.
    var seedKey: String?
    /// The Cloud API's answers to the case's first requests (later ones succeed).
    var answers: [StandInCloudAPI.Answer]
    /// How many copies of the input go through at once (internalIds suffixed -1, -2, …).
    var copies: Int
    /// The lane of each copy (`lanes`; one name puts every copy in that lane); empty: no lane.
    var lanes: [String]
    /// For sources that check their input (a signed webhook): whether to make it authentic, and headers to add.
    var signed: Bool
    var headers: [String: String]
    /// Keys to write to the store before the case: a string (`wamid:…` → internalId, say) or a
    /// list, written as a set's members (an opt-out list).
    var seed: [(key: String, value: SeedValue)]
    var expect: Expectation

    static let caseKeys = ["name", "input", "input_raw", "attempt", "advance", "redis", "seed_key", "whatsapp", "repeat", "lanes", "signed", "headers", "seed", "expect"]
    static let expectKeys = ["outcome", "request", "sent", "error", "step", "attempts", "delay", "key", "waited", "sent_at", "sent_order", "requests", "response", "events"]
    /// What `seed` writes at a key.
    enum SeedValue {
        case string(String)
        case members([String])
    }

    /// Parses a case, or reports every problem with its place; `outcomes` are the names `expect.outcome` may take.
    static func parse(_ node: ConfigNode, outcomes: [String], diagnostics: inout [Diagnostic]) -> PipelineTestCase? {
        let errorsBefore = diagnostics.count
        func fail(_ at: SourceLocation, _ message: String) { diagnostics.append(.error(at: at, message)) }
        guard let entries = node.entries else {
            fail(node.location, "a case must be a map with `name`, `input` and `expect`, found \(node.kindName)")
            return nil
        }
        for entry in entries where !caseKeys.contains(entry.key) {
            fail(entry.keyLocation, "unknown key `\(entry.key)` in a case\(Suggestion.hint(for: entry.key, in: caseKeys)) (known: \(caseKeys.joined(separator: ", ")))")
        }
        let name = node["name"]?.scalar ?? "case at line \(node.location.line)"
        var body: [UInt8] = []
        var input: JSONValue?
        if let raw = node["input_raw"] {
            body = Array((raw.scalar ?? "").utf8)
        } else if let inputNode = node["input"] {
            input = inputNode.jsonValue
            body = inputNode.jsonValue.encodedBytes()
        } else {
            fail(node.location, "case `\(name)` needs `input` (a message) or `input_raw` (exact body text)")
        }
        var attempt = 1
        if let attemptNode = node["attempt"] {
            if let value = attemptNode.scalar.flatMap(Int.init), value >= 1 { attempt = value } else { fail(attemptNode.location, "`attempt` must be a whole number from 1") }
        }
        let advance = duration(node["advance"], "advance", &diagnostics)
        var redisAvailable = true
        if let redis = node["redis"] {
            switch redis.scalar {
            case "up": redisAvailable = true
            case "down": redisAvailable = false
            default: fail(redis.location, "`redis` must be up or down")
            }
        }
        var seedKey: String?
        if let seed = node["seed_key"] {
            if let text = seed.scalar, ["processing", "completed"].contains(text) { seedKey = text } else { fail(seed.location, "`seed_key` must be processing or completed") }
        }
        var answers: [StandInCloudAPI.Answer] = []
        if let whatsapp = node["whatsapp"] {
            for item in whatsapp.items ?? [whatsapp] {
                answers.append(answer(item, &diagnostics))
            }
        }
        var signed = true
        if let signedNode = node["signed"] {
            if let flag = signedNode.jsonValue.boolValue { signed = flag } else { fail(signedNode.location, "`signed` must be true or false") }
        }
        var headers: [String: String] = [:]
        for entry in node["headers"]?.entries ?? [] { headers[entry.key.lowercased()] = entry.value.scalar ?? "" }
        let seed = (node["seed"]?.entries ?? []).map { entry in
            (key: entry.key, value: entry.value.items.map { SeedValue.members($0.map { $0.scalar ?? "" }) } ?? .string(entry.value.scalar ?? ""))
        }
        var copies = 1
        if let repeatNode = node["repeat"] {
            if let value = repeatNode.scalar.flatMap(Int.init), (1...10_000).contains(value) { copies = value } else { fail(repeatNode.location, "`repeat` must be a whole number from 1 to 10000") }
        }
        var lanes: [String] = []
        if let lanesNode = node["lanes"] {
            lanes = (lanesNode.items ?? [lanesNode]).compactMap(\.scalar)
            if lanes.count > 1, lanes.count != copies { fail(lanesNode.location, "`lanes` names one lane for every copy, or one for all: \(lanes.count) lanes for \(copies) copies") }
        }
        guard let expectNode = node["expect"], let expectEntries = expectNode.entries else {
            fail(node["expect"]?.location ?? node.location, "case `\(name)` needs `expect` with at least `outcome`")
            return nil
        }
        for entry in expectEntries where !expectKeys.contains(entry.key) {
            fail(entry.keyLocation, "unknown key `\(entry.key)` in `expect`\(Suggestion.hint(for: entry.key, in: expectKeys)) (known: \(expectKeys.joined(separator: ", ")))")
        }
        var expect = Expectation()
        if let outcome = expectNode["outcome"] {
            if let text = outcome.scalar, outcomes.contains(text) { expect.outcome = text } else {
                fail(outcome.location, "`outcome` must be one of \(outcomes.joined(separator: ", "))\(Suggestion.hint(for: outcome.scalar ?? "", in: outcomes))")
            }
        }
        expect.request = expectNode["request"]?.jsonValue
        if let sent = expectNode["sent"] { expect.sent = sent.jsonValue.boolValue ?? { fail(sent.location, "`sent` must be true or false"); return nil }() }
        expect.error = expectNode["error"]?.scalar
        expect.step = expectNode["step"]?.scalar
        if let attempts = expectNode["attempts"] { expect.attempts = attempts.scalar.flatMap(Int.init) ?? { fail(attempts.location, "`attempts` must be a number"); return nil }() }
        expect.delay = duration(expectNode["delay"], "delay", &diagnostics)
        if let waited = expectNode["waited"] {
            let reasons = (waited.items ?? [waited]).compactMap(\.scalar)
            let known = WaitReason.known.map(\.rawValue)
            for reason in reasons where !known.contains(reason) { fail(waited.location, "`waited`: \(reason) is not one of \(known.joined(separator: ", "))") }
            expect.waited = reasons
        }
        if let sentAt = expectNode["sent_at"] {
            expect.sentAt = (sentAt.items ?? [sentAt]).compactMap { duration($0, "sent_at", &diagnostics) }
        }
        if let order = expectNode["sent_order"] {
            expect.sentOrder = (order.items ?? [order]).compactMap { item in
                item.scalar.flatMap(Int.init) ?? { fail(item.location, "`sent_order` lists copy numbers, from 1"); return nil }()
            }
        }
        if let requests = expectNode["requests"] { expect.requests = requests.scalar.flatMap(Int.init) ?? { fail(requests.location, "`requests` must be a number"); return nil }() }
        if let response = expectNode["response"] { expect.response = response.scalar.flatMap(Int.init) ?? { fail(response.location, "`response` must be an HTTP status"); return nil }() }
        if let events = expectNode["events"] {
            var expected: [(routingKey: String, body: JSONValue?)] = []
            for item in events.items ?? [] {
                guard let routingKey = item["routing_key"]?.scalar else {
                    fail(item.location, "an expected event needs `routing_key` (and optionally `body`, a subset of the event)")
                    continue
                }
                expected.append((routingKey, item["body"]?.jsonValue))
            }
            if events.items == nil { fail(events.location, "`events` must be a list") }
            expect.events = expected
        }
        if let key = expectNode["key"] {
            var expectation = KeyExpectation()
            expectation.status = key["status"]?.scalar
            if let status = expectation.status, !["completed", "processing", "in_doubt", "absent"].contains(status) {
                fail(key["status"]?.location ?? key.location, "`key.status` must be completed, processing, in_doubt or absent")
            }
            expectation.ttl = duration(key["ttl"], "key.ttl", &diagnostics)
            expectation.wamid = key["wamid"]?.scalar
            expect.key = expectation
        }
        guard diagnostics.count == errorsBefore else { return nil }
        return PipelineTestCase(name: name, location: node.location, body: body, input: input, attempt: attempt, advance: advance,
                                redisAvailable: redisAvailable, seedKey: seedKey, answers: answers, copies: copies, lanes: lanes, signed: signed, headers: headers, seed: seed, expect: expect)
    }

    /// One scripted Cloud API answer: `{ status, error_code, error_message, delay, lost, status_after }`
    /// (`lost: accepted` or `not_accepted`: the answer never comes; `status_after`: when a delivery
    /// status of an accepted request reaches the statuses pipeline, after the request).
    private static func answer(_ node: ConfigNode, _ diagnostics: inout [Diagnostic]) -> StandInCloudAPI.Answer {
        var answer = StandInCloudAPI.Answer()
        let keys = ["status", "error_code", "error_message", "delay", "lost", "status_after"]
        for entry in node.entries ?? [] where !keys.contains(entry.key) {
            diagnostics.append(.error(at: entry.keyLocation, "unknown key `\(entry.key)` in `whatsapp`\(Suggestion.hint(for: entry.key, in: keys)) (known: \(keys.joined(separator: ", ")))"))
        }
        if let status = node["status"] {
            if let value = status.scalar.flatMap(Int.init) { answer.status = value } else { diagnostics.append(.error(at: status.location, "`status` must be an HTTP status")) }
        }
        if let code = node["error_code"] {
            if let value = code.scalar.flatMap(Int.init) { answer.errorCode = value } else { diagnostics.append(.error(at: code.location, "`error_code` must be a number")) }
        }
        answer.errorMessage = node["error_message"]?.scalar
        answer.delay = duration(node["delay"], "delay", &diagnostics)
        if let lost = node["lost"] {
            if let value = lost.scalar.flatMap(StandInCloudAPI.LostAnswer.init(rawValue:)) {
                answer.lost = value
            } else {
                diagnostics.append(.error(at: lost.location, "`lost` must be `accepted` (Meta took it, the answer was lost) or `not_accepted`"))
            }
        }
        answer.statusAfter = duration(node["status_after"], "status_after", &diagnostics)
        return answer
    }

    private static func duration(_ node: ConfigNode?, _ name: String, _ diagnostics: inout [Diagnostic]) -> Duration? {
        guard let node else { return nil }
        guard let text = node.scalar, let duration = DurationParser.parse(text) else {
            diagnostics.append(.error(at: node.location, "`\(name)` must be a duration such as 250ms, 30s, 25h"))
            return nil
        }
        return duration
    }
}
