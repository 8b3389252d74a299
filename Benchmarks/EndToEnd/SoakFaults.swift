import AMQPClient
import Foundation
import RedisClient

/// What the soak's faults that last a while found ("Reliability round 2"): a row each for the
/// figures table, and what fails the soak.
struct FaultFigures {
    /// Outcome events refused by the broker for `period`.
    struct EventRefusal {
        var period: Duration
        /// Event publishes refused meanwhile: each left a copy in a queue bound beside the refusing one.
        var copies: Int
        /// Messages the workers held, their outcomes not recorded (`outbound_unreported_outcomes`,
        /// the most seen); nil when `/metrics` did not answer.
        var held: Int?
        /// From the refusing queue's deletion to no message held; nil: some still held after a minute.
        var releasedAfter: Duration?
    }

    /// The broker closed the workers' connections.
    struct ConnectionClose {
        /// What `rabbitmqctl close_all_user_connections` printed (nothing when it worked).
        var answer: String
        /// From the close to a send only a delivery taken after it explains; nil: none within 30 s.
        var consumingAgainAfter: Duration?
    }

    /// Redis slower than the workers' `command_timeout` for `period`.
    struct SlowRedis {
        var period: Duration
        var rounds: Int
        var sentDuring: Int
        /// Claims made while Redis was slow still `processing` 15 s after it: of messages not sent
        /// (each held until its 2 min lease ends: stuck), and of messages sent (their completion lost).
        var stuck: Int
        var completionsLost: Int
    }

    /// The workers distrusted the stand-in's certificate for `period`.
    struct UntrustedCA {
        var period: Duration
        /// Sends after the switch to the wrong CA (messages already under way), and when the last came.
        var sentAfterSwitch: Int
        var lastSendAfter: Duration?
        /// From the right CA's reload to the next send; nil: none within a minute.
        var sendingAgainAfter: Duration?
        /// Sending stopped: nothing arrived in the last 2 s of the period.
        var stopped: Bool { (lastSendAfter ?? .zero) <= period - .seconds(2) }
    }

    var eventsRefused: EventRefusal?
    var connectionsClosed: ConnectionClose?
    var redisSlow: SlowRedis?
    var untrustedCA: UntrustedCA?
    /// Faults that could not be carried out, and why.
    var errors: [String] = []

    /// The rows of the figures table.
    var rows: [String] {
        var rows: [String] = []
        if let refusal = eventsRefused {
            rows.append("| events refused \(seconds(refusal.period, "%.0f")) (a queue at `x-max-length: 0`, `reject-publish`): copies published during the refusal / messages held / all released after it ended "
                + "| \(refusal.copies) / \(refusal.held.map { "\($0)" } ?? "? (/metrics did not answer)") / \(seconds(refusal.releasedAfter)) |")
        } else {
            rows.append("| events refused | not injected |")
        }
        if let close = connectionsClosed {
            rows.append("| consuming again after a broker-closed connection (`close_all_user_connections guest`; limit 5 s) | \(seconds(close.consumingAgainAfter))\(close.answer.isEmpty ? "" : " (rabbitmqctl: \(close.answer))") |")
        } else {
            rows.append("| consuming again after a broker-closed connection | not injected |")
        }
        if let slow = redisSlow {
            rows.append("| Redis slow \(seconds(slow.period, "%.0f")) (\(slow.rounds) × `DEBUG SLEEP 0.5`): sends meanwhile / claims of the period still processing 15 s on, "
                + "of unsent messages (stuck for a lease) / of sent ones (completion lost) | \(slow.sentDuring) / \(slow.stuck) / \(slow.completionsLost) |")
        } else {
            rows.append("| Redis slow | not injected |")
        }
        if let untrusted = untrustedCA {
            rows.append("| untrusted CA \(seconds(untrusted.period, "%.0f")) (`ca_file` other-ca.pem, SIGHUP; then ca.pem, SIGHUP): sends after the switch (under way), the last at / sending again after the fix "
                + "| \(untrusted.sentAfterSwitch), \(seconds(untrusted.lastSendAfter ?? .zero)) / \(seconds(untrusted.sendingAgainAfter)) |")
        } else {
            rows.append("| untrusted CA | not injected |")
        }
        return rows
    }

    /// Why the faults fail the soak (none: they passed).
    var failures: [String] {
        var failures = errors.map { "fault not carried out: \($0)" }
        if let refusal = eventsRefused {
            if let held = refusal.held {
                if held == 0 { failures.append("no message held while events were refused: the refusal did not take") }
                if refusal.copies > held * 6 { failures.append("\(refusal.copies) event copies for \(held) held messages: published again in a loop, not with backoff") }
            } else {
                failures.append("held messages unknown: /metrics did not answer")
            }
            if refusal.releasedAfter == nil { failures.append("messages still held a minute after events were taken again") }
        } else {
            failures.append("events refusal not injected")
        }
        if let close = connectionsClosed {
            if close.answer.contains("Error") { failures.append("close_all_user_connections failed: \(close.answer)") }
            if let after = close.consumingAgainAfter {
                if after > .seconds(5) { failures.append("consuming again only \(seconds(after)) after the broker closed the connections (limit 5 s)") }
            } else {
                failures.append("not consuming 30 s after the broker closed the connections")
            }
        } else {
            failures.append("broker-closed connection not injected")
        }
        if let slow = redisSlow {
            if slow.stuck > 0 { failures.append("\(slow.stuck) messages stuck for a lease after Redis was slow") }
        } else {
            failures.append("slow Redis not injected")
        }
        if let untrusted = untrustedCA {
            if !untrusted.stopped { failures.append("sends went on with an untrusted certificate (the last \(seconds(untrusted.lastSendAfter)) after the switch)") }
            if untrusted.sendingAgainAfter == nil { failures.append("no send within a minute of the right CA's reload") }
        } else {
            failures.append("untrusted CA not injected")
        }
        return failures
    }

    private func seconds(_ duration: Duration?, _ format: String = "%.1f") -> String {
        duration.map { String(format: "\(format) s", $0.seconds) } ?? "never"
    }
}

/// The faults themselves. Each runs to its end, holding the soak's loop: no other disruption overlaps it.
extension Soak {
    /// Outcome events refused for `period`: a queue bound to the soak's events exchange at its
    /// length limit with `reject-publish` makes the broker nack every event, and a queue bound
    /// beside it keeps a copy of each attempt. The workers keep the deliveries (intake stops at
    /// their prefetch) and report again with backoff; once the queue is gone they settle them.
    /// Nothing may be dead-lettered or sent twice for it (the soak's own checks).
    func refuseEvents(for period: Duration) async throws -> FaultFigures.EventRefusal {
        let refusing = "\(queue).events-refused"
        let copies = "\(queue).events-copies"
        // Gone by themselves a minute on, should the soak stop before deleting them.
        let expires = AMQPValue.int(60_000)
        // The broker may still be coming back from a restart moments ago: the declarations are retried for 30 s.
        let publisher = bench.publisher
        try await untilBrokerAnswers {
            try await publisher.declare(AMQPExchangeDeclaration(name: self.eventsExchange))
            try await publisher.declare(AMQPQueueDeclaration(name: refusing, arguments: ["x-max-length": .int(0), "x-overflow": .string("reject-publish"), "x-expires": expires]))
            try await publisher.declare(AMQPQueueDeclaration(name: copies, arguments: ["x-expires": expires]))
            try await publisher.bind(AMQPBinding(queue: refusing, exchange: self.eventsExchange, routingKey: "#"))
            try await publisher.bind(AMQPBinding(queue: copies, exchange: self.eventsExchange, routingKey: "#"))
        }
        log("\(elapsed): events refused for \(period)")
        let start = ContinuousClock.now
        var held: [Int] = []
        for second in 1...max(1, Int(period.components.seconds)) {
            try await Task.sleep(until: start + .seconds(second), clock: .continuous)
            if let count = metric("outbound_unreported_outcomes") { held.append(count) }
        }
        let copied = try await bench.publisher.messageCount(copies)
        try await bench.publisher.delete(refusing)
        try await bench.publisher.delete(copies)
        let ended = ContinuousClock.now
        log("\(elapsed): events taken again; \(copied) copies published during the refusal, up to \(held.max().map { "\($0)" } ?? "?") messages held")
        var releasedAfter: Duration?
        while ContinuousClock.now - ended < .seconds(60) {
            if metric("outbound_unreported_outcomes") == 0 {
                releasedAfter = ContinuousClock.now - ended
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        return FaultFigures.EventRefusal(period: period, copies: copied, held: held.max(), releasedAfter: releasedAfter)
    }

    /// The broker closes every connection of the workers' user (`guest`: the bench's own publisher's
    /// too). The workers may still send what they held at the close — at most a prefetch each — so
    /// more sends than that show a delivery taken after it: consuming again.
    func closeConnections() async throws -> FaultFigures.ConnectionClose {
        let answer = try bench.runServices(["ctl", "close_all_user_connections", "guest", "soak: a broker-closed connection"])
            .trimmingCharacters(in: .whitespacesAndNewlines)
        // Timed from the command's return: its Erlang VM takes most of a second to start, before it closes anything.
        let closed = ContinuousClock.now
        let heldAtTheClose = standIn.count + Self.prefetch * workers.filter { $0.pid > 0 }.count
        log("\(elapsed): the broker closed the connections\(answer.isEmpty ? "" : " (\(answer))")")
        var close = FaultFigures.ConnectionClose(answer: answer)
        while ContinuousClock.now - closed < .seconds(30) {
            if standIn.count > heldAtTheClose {
                close.consumingAgainAfter = ContinuousClock.now - closed
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        log("\(elapsed): consuming again \(close.consumingAgainAfter.map { String(format: "%.1f s", $0.seconds) } ?? "not within 30 s") after the close")
        return close
    }

    /// Redis slower than the workers' `command_timeout` (250 ms in pipelines/outbound.yaml) for about
    /// `period`: `DEBUG SLEEP 0.5` in rounds 20 ms apart. The pipeline's `degradation` decides what
    /// happens (`fail_open` for `idempotency` and `mark_completed` as written: sent without the key,
    /// acknowledged without completing it).
    /// 15 s on, a claim made meanwhile that is still `processing` for a message not sent holds that
    /// message until its 2 min lease ends: stuck.
    func slowRedis(for period: Duration) async throws -> FaultFigures.SlowRedis {
        let client = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: redis.port, commandTimeout: .seconds(3), poolSize: 1))
        let sentBefore = standIn.count
        let from = Date()
        let start = ContinuousClock.now
        var rounds = 0
        log("\(elapsed): Redis slow for \(period)")
        while ContinuousClock.now - start < period {
            _ = try await client.checked(["DEBUG", "SLEEP", "0.5"])
            rounds += 1
            try await Task.sleep(for: .milliseconds(20))
        }
        let to = Date()
        let sentDuring = standIn.count - sentBefore
        log("\(elapsed): Redis quick again after \(rounds) rounds of DEBUG SLEEP 0.5; \(sentDuring) sends meanwhile")
        try await Task.sleep(for: .seconds(15))
        let claims = try await openClaims(madeIn: from.addingTimeInterval(-1)...to.addingTimeInterval(1), client)
        log("\(elapsed): claims of the slow period still processing: \(claims.unsent) of unsent messages, \(claims.sent) of sent ones")
        return FaultFigures.SlowRedis(period: period, rounds: rounds, sentDuring: sentDuring, stuck: claims.unsent, completionsLost: claims.sent)
    }

    /// Idempotency keys (`idempotency:outbound:{internalId}`, as pipelines/outbound.yaml names them)
    /// still `processing` whose claim was made within `window`: of messages not sent yet, and of sent ones.
    private func openClaims(madeIn window: ClosedRange<Date>, _ client: RedisClient) async throws -> (unsent: Int, sent: Int) {
        let sent = standIn.sent
        var claims = (unsent: 0, sent: 0)
        for first in stride(from: 0, to: options.messages, by: 500) {
            let numbers = first..<min(first + 500, options.messages)
            let reply = try await client.checked(["MGET"] + numbers.map { "idempotency:outbound:soak-\($0)" })
            guard case .array(let values) = reply else { continue }
            for (number, value) in zip(numbers, values) {
                // Most keys are completed: only a `processing` one is decoded.
                guard let text = value.string, text.contains(#""status":"processing""#),
                      let since = KeyClaim.decode(text)?.since, window.contains(since) else { continue }
                if sent[number] == nil { claims.unsent += 1 } else { claims.sent += 1 }
            }
        }
        return claims
    }

    /// The workers distrust the stand-in's certificate for `period`: the variant's `ca_file` becomes
    /// a CA that signed nothing and every worker gets a SIGHUP, then the right CA and another SIGHUP.
    /// An untrusted certificate concerns every message: sending pauses, nothing is dead-lettered
    /// (the soak's own check), and the reload with the right CA resumes it.
    func distrustStandIn(for period: Duration) async throws -> FaultFigures.UntrustedCA {
        caFile = untrustedCA
        try reloadWorkers()
        let switched = ContinuousClock.now
        log("\(elapsed): ca_file \(untrustedCA) (SIGHUP) for \(period)")
        let before = standIn.count
        var count = before
        var lastSendAfter: Duration?
        while ContinuousClock.now - switched < period {
            try await Task.sleep(for: .milliseconds(50))
            if standIn.count > count {
                count = standIn.count
                lastSendAfter = ContinuousClock.now - switched
            }
        }
        caFile = trustedCA
        try reloadWorkers()
        let fixed = ContinuousClock.now
        if standIn.count > count {
            count = standIn.count
            lastSendAfter = fixed - switched
        }
        log("\(elapsed): ca_file \(trustedCA) again (SIGHUP); \(count - before) sends after the switch")
        var untrusted = FaultFigures.UntrustedCA(period: period, sentAfterSwitch: count - before, lastSendAfter: lastSendAfter)
        while ContinuousClock.now - fixed < .seconds(60) {
            if standIn.count > count {
                untrusted.sendingAgainAfter = ContinuousClock.now - fixed
                break
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        log("\(elapsed): sending again \(untrusted.sendingAgainAfter.map { String(format: "%.1f s", $0.seconds) } ?? "not within a minute") after the fix")
        return untrusted
    }

    /// Runs `body` until it does not fail for want of a connection (a broker restarted moments ago), 30 s at most.
    private func untilBrokerAnswers(_ body: () async throws -> Void) async throws {
        let limit = ContinuousClock.now + .seconds(30)
        while true {
            do {
                return try await body()
            } catch let error as AMQPError {
                guard case .connection = error, ContinuousClock.now < limit else { throw error }
                try await Task.sleep(for: .milliseconds(500))
            }
        }
    }

    /// Writes the variant and sends every live worker a SIGHUP.
    private func reloadWorkers() throws {
        try writeVariant()
        for index in workers.indices { hangUp(index) }
    }

    /// The sum of a metric over the live workers' `/metrics`; nil when one does not answer.
    func metric(_ name: String) -> Int? {
        workersMetric(name, healthPorts: workers.filter { $0.pid > 0 }.map(\.healthPort))
    }
}

/// What the soak reads of an idempotency key's value: its status and when it was claimed (Redis's clock).
private struct KeyClaim: Decodable {
    var status: String
    var since: Date?

    private enum CodingKeys: String, CodingKey { case status, since }

    init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        status = try container.decode(String.self, forKey: .status)
        // As the claim script writes it: 2025-01-31T12:00:00.123Z.
        since = try container.decodeIfPresent(String.self, forKey: .since).flatMap { text in
            (try? Date(text, strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted)))
                ?? (try? Date(text, strategy: .iso8601))
        }
    }

    static func decode(_ text: String) -> KeyClaim? {
        try? JSONDecoder().decode(KeyClaim.self, from: Data(text.utf8))
    }
}
