import AMQPClient
import Foundation
import Logging
import TestSupport

/// The soak run (`scripts/soak`): two release workers drain a large queue while Redis restarts
/// three times, the broker twice, one worker is killed with SIGKILL (and replaced), both get
/// SIGHUPs, and the stand-in fails 2 % of requests transiently; and, each for a while, outcome
/// events are refused, the broker closes the connections, Redis answers slower than the
/// workers' `command_timeout`, and the workers distrust the stand-in's certificate
/// (SoakFaults.swift). Then every valid id must have been sent, duplicates stay within the
/// killed worker's in-flight count, `.dead` holds only the deliberately invalid messages, each
/// of those faults passed its own check, and the workers' memory stays flat.
@MainActor
final class Soak {
    /// One worker process, where it answers `/metrics`, and its memory over the run.
    struct Worker {
        var pid: pid_t
        var name: String
        var healthPort: Int
        var residentKB: [Int] = []
        /// Its health port has answered: its signal handlers are installed, a SIGHUP reloads it
        /// (before that, SIGHUP's default action would end it).
        var started = false
    }

    let bench: Bench
    let options: Options
    let standIn: StandIn
    let queue: String
    /// The soak's own events exchange (`OUTBOUND_EVENTS_EXCHANGE`), the one the refusal binds to.
    let eventsExchange = "soak.events"
    /// The CA that signed the stand-in's certificate, and one that signed nothing.
    let trustedCA: String
    let untrustedCA: String
    let redis: SoakRedis
    var workers: [Worker] = []
    /// The stand-in over TLS (HTTP/2, as graph.facebook.com): the workers' `WHATSAPP_API_URL`.
    private var apiURL = ""
    /// The `ca_file` the variant gives the workers for the stand-in.
    var caFile: String
    /// What the faults of SoakFaults.swift found.
    var faults = FaultFigures()
    private var events: [String] = []
    private let started = ContinuousClock.now
    /// `started` on the clock the stand-in stamps its arrivals with.
    private let startedUptime = DispatchTime.now().uptimeNanoseconds
    private var ttlToggle = false

    init(bench: Bench, options: Options, standIn: StandIn) throws {
        self.bench = bench
        self.options = options
        self.standIn = standIn
        queue = "soak.\(UUID().uuidString.prefix(6).lowercased())"
        redis = try SoakRedis(port: options.redisPort + 15)
        let tls = URL(fileURLWithPath: options.tlsDirectory)
        trustedCA = tls.appendingPathComponent("ca.pem").path
        untrustedCA = tls.appendingPathComponent("other-ca.pem").path
        caFile = trustedCA
    }

    func run() async throws {
        let count = options.messages
        let invalidEvery = 200
        try redis.start()
        defer { redis.stop() }
        let tls = URL(fileURLWithPath: options.tlsDirectory)
        apiURL = try await standIn.start(.tls(certificate: tls.appendingPathComponent("server.pem").path, key: tls.appendingPathComponent("server.key").path, http2: true))
        try writeVariant()
        standIn.reset()
        standIn.fail(every: 50)
        log("soak: \(count) messages (every \(invalidEvery)th invalid), 2 workers, stand-in on \(apiURL) (TLS, HTTP/2) failing 1 request in 50 with 503/131000, Redis with AOF on \(redis.port), events to \(eventsExchange)")
        try await bench.publisher.declare(AMQPQueueDeclaration(name: queue))
        for index in 0..<2 { workers.append(try startWorker("worker-\(index + 1)")) }
        let numbers = Array(0..<count)
        let bodies = numbers.map { number in
            number % invalidEvery == invalidEvery - 1
                ? Array(#"{"internalId":"soak-\#(number)","to":"12","type":"text","text":{"body":"invalid on purpose"}}"#.utf8)
                : Array(#"{"internalId":"soak-\#(number)","to":"+55119\#(String(format: "%08d", number))","type":"text","text":{"body":"Soak \#(number)"}}"#.utf8)
        }
        let valid = count - count / invalidEvery
        try await publish(bodies[...], to: queue, bench.publisher)
        log("published \(count) in \(ContinuousClock.now - started)")

        // Disruptions, each when that share of the valid messages has been sent. The faults that
        // last a while (SoakFaults.swift) hold the loop until they end: nothing else overlaps them.
        var plan: [(Double, String)] = [(0.10, "redis"), (0.20, "broker"), (0.30, "kill"), (0.38, "events-refused"), (0.45, "redis"),
                                        (0.52, "connections-closed"), (0.60, "broker"), (0.68, "redis-slow"), (0.75, "redis"), (0.88, "untrusted-ca")]
        plan += (1...20).map { (Double($0) * 0.04, "sighup") }
        plan.sort { $0.0 < $1.0 }
        var killedInFlight = 0
        let deadline = ContinuousClock.now + .seconds(Int64(options.soakMinutes * 60))
        while ContinuousClock.now < deadline {
            sample()
            while let next = plan.first, Double(standIn.sent.count) / Double(valid) >= next.0 {
                plan.removeFirst()
                killedInFlight += try await disrupt(next.1)
            }
            if standIn.sent.count >= valid, plan.isEmpty, (try? await bench.publisher.messageCount(queue)) == 0 { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        try await Task.sleep(for: .seconds(2))
        sample()
        let sent = standIn.sent
        let missing = (0..<count).filter { $0 % invalidEvery != invalidEvery - 1 && sent[$0] == nil }
        let duplicates = sent.values.reduce(0) { $0 + max(0, $1 - 1) }
        let dead = try await bench.publisher.messageCount("\(queue).dead")
        let (deadSteps, deadIDs) = try await deadLetters(expecting: dead)
        let invalidIDs = Set((0..<count).filter { $0 % invalidEvery == invalidEvery - 1 }.map { "soak-\($0)" })
        for worker in workers { stop(worker.pid) }
        log("")
        log("| soak, \(Date().formatted(.iso8601.year().month().day())) | figure |\n|---|---|")
        log("| messages (of them invalid on purpose) | \(count) (\(count / invalidEvery)) |")
        log("| run time, first publish to the last send | \(String(format: "%.0f s", (ContinuousClock.now - started).seconds)) |")
        log("| disruptions | \(events.joined(separator: "; ")) |")
        log("| transient failures answered by the stand-in | \(standIn.failed) |")
        log("| valid ids not sent | \(missing.count)\(missing.isEmpty ? "" : ": \(missing.prefix(20))") |")
        log("| duplicate sends (limit: the killed worker's \(killedInFlight) in flight) | \(duplicates)\(duplicateArrivals(sent)) |")
        // A dead letter whose original's ack a restart or the kill lost is dead-lettered again: a copy, not a loss.
        log("| in .dead | \(dead): \(deadIDs.count) distinct ids, \(deadIDs == invalidIDs ? "exactly the invalid ones" : "NOT the invalid ones"); by step \(deadSteps); copies (limit \(killedInFlight)): \(dead - deadIDs.count) |")
        for row in faults.rows { log(row) }
        for worker in workers where worker.residentKB.count > 10 {
            let tenth = worker.residentKB[worker.residentKB.count / 10]
            log("| \(worker.name) RSS at 10 % / at the end / peak (MiB) | \(mb(tenth)) / \(mb(worker.residentKB.last ?? 0)) / \(mb(worker.residentKB.max() ?? 0)) |")
        }
        await bench.deleteQueues(queue)
        for failure in faults.failures { log("fault check failed: \(failure)") }
        let passed = missing.isEmpty && duplicates <= killedInFlight && deadIDs == invalidIDs && dead - deadIDs.count <= killedInFlight
            && deadSteps.keys.allSatisfy { $0 == "validate" } && faults.failures.isEmpty
        log(passed ? "soak passed" : "SOAK FAILED")
        if !passed { throw BenchFailure("soak failed") }
    }

    private func mb(_ kilobytes: Int) -> String { String(format: "%.1f", Double(kilobytes) / 1024) }

    func log(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }

    /// When each sent-twice id arrived at the stand-in (s since the start, as the disruptions
    /// are logged), the first 20: a second send a lease (2 min) after the kill is a takeover of
    /// a killed worker's claim whose send was answered and not yet marked.
    private func duplicateArrivals(_ sent: [Int: Int]) -> String {
        let twice = Set(sent.filter { $0.value > 1 }.keys)
        guard !twice.isEmpty else { return "" }
        let arrivals = Dictionary(grouping: standIn.snapshot.filter { twice.contains($0.0) }, by: \.0)
        let listed = arrivals.keys.sorted().prefix(20).map { id in
            "soak-\(id) at " + (arrivals[id] ?? []).map { String(format: "%.1f", Double($0.1 &- startedUptime) / 1e9) }.joined(separator: " and ") + " s"
        }
        return ": " + listed.joined(separator: "; ")
    }

    /// The time since the soak started, as the log and the disruptions give it.
    var elapsed: String { String(format: "%.0f s", (ContinuousClock.now - started).seconds) }

    /// Carries out one disruption; returns the in-flight count of a killed worker.
    private func disrupt(_ kind: String) async throws -> Int {
        let at = elapsed
        switch kind {
        case "redis":
            redis.stop()
            try redis.start()
            events.append("Redis restart at \(at)")
        case "broker":
            _ = try bench.runServices(["restart", "rabbitmq"])
            events.append("broker restart at \(at)")
        case "kill":
            let victim = workers.removeFirst()
            kill(victim.pid, SIGKILL)
            var status: Int32 = 0
            waitpid(victim.pid, &status, 0)
            workers.append(victim)
            workers[workers.count - 1].pid = -1
            workers.append(try startWorker("worker-3 (replacement)"))
            events.append("kill -9 of \(victim.name) at \(at)")
            log("\(at): kill -9 of \(victim.name)")
            // What it held: its prefetch (deliveries unacknowledged), the most it can have sent without acknowledging.
            return Self.prefetch
        case "events-refused":
            let figures = await inject(kind) { try await self.refuseEvents(for: .seconds(8)) }
            faults.eventsRefused = figures
            events.append("events refused 8 s from \(at)")
            return 0
        case "connections-closed":
            let figures = await inject(kind) { try await self.closeConnections() }
            faults.connectionsClosed = figures
            events.append("broker-closed connections at \(at)")
            return 0
        case "redis-slow":
            let figures = await inject(kind) { try await self.slowRedis(for: .seconds(6)) }
            faults.redisSlow = figures
            events.append("Redis slow 6 s from \(at)")
            return 0
        case "untrusted-ca":
            let figures = await inject(kind) { try await self.distrustStandIn(for: .seconds(6)) }
            faults.untrustedCA = figures
            events.append("untrusted CA 6 s from \(at)")
            return 0
        default:
            ttlToggle.toggle()
            try writeVariant()
            if let live = workers.indices.filter({ workers[$0].pid > 0 }).randomElement() { hangUp(live) }
            if !events.contains(where: { $0.hasPrefix("20 SIGHUPs") }) { events.append("20 SIGHUPs (every 4 %)") }
        }
        log("\(at): \(kind)")
        return 0
    }

    /// Runs one of the faults that last a while. Its error fails the soak at the end rather than
    /// stopping it here, with the workers still running.
    private func inject<Figures>(_ kind: String, _ fault: () async throws -> Figures) async -> Figures? {
        do {
            return try await fault()
        } catch {
            log("\(elapsed): \(kind) failed: \(error)")
            faults.errors.append("\(kind): \(error)")
            return nil
        }
    }

    private func sample() {
        for index in workers.indices where workers[index].pid > 0 {
            workers[index].residentKB.append(ProcessUsage(workers[index].pid).residentKB)
        }
    }

    /// Writes the soak's variant: its ttl toggles with the SIGHUPs, its `ca_file` with the untrusted-CA fault.
    func writeVariant() throws {
        try """
            source:
              with:
                prefetch: \(Self.prefetch)
                concurrency: 32
                retry: { max_attempts: 6, backoff: [200ms, 1s, 3s] }
            resources:
              whatsapp:
                with: { throughput: 100000, ca_file: "\(caFile)" }
            steps:
              - name: idempotency
                with: { ttl: \(ttlToggle ? 86_399 : 86_400) }
            """.write(to: bench.folder.appendingPathComponent("outbound.soak.yaml"), atomically: true, encoding: .utf8)
    }

    /// Sends a worker SIGHUP once it has started (a worker still starting reads the variant as it is now).
    func hangUp(_ index: Int) {
        guard workers[index].pid > 0 else { return }
        if !workers[index].started {
            let code = try? spawnAndWait(["/usr/bin/curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "2", "http://127.0.0.1:\(workers[index].healthPort)/health"])
            workers[index].started = code.map { !$0.hasPrefix("000") && !$0.isEmpty } ?? false
        }
        if workers[index].started { kill(workers[index].pid, SIGHUP) }
    }

    /// Each worker's deliveries unacknowledged at most (the variant's `prefetch`).
    static let prefetch = 64

    private func startWorker(_ name: String) throws -> Worker {
        let healthPort = freePort()
        let pid = try spawn([options.worker, "run"], environment: [
            "PIPELINE_FILE": bench.folder.appendingPathComponent("outbound.yaml").path, "PIPELINE_ENV": "soak",
            "RABBITMQ_URL": options.rabbitURL, "OUTBOUND_QUEUE": queue, "OUTBOUND_EVENTS_EXCHANGE": eventsExchange,
            "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(redis.port),
            "WHATSAPP_API_URL": apiURL, "WHATSAPP_ACCESS_TOKEN": "soak", "WHATSAPP_PHONE_NUMBER_ID": "1055",
            "HEALTH_PORT": String(healthPort), "LOG_LEVEL": "warning", "LOG_FORMAT": "json",
        ], log: bench.folder.appendingPathComponent("\(name.prefix(8)).log").path)
        return Worker(pid: pid, name: name, healthPort: healthPort)
    }

    /// The `x-error-step` of every dead letter, counted.
    /// The dead letters by the step that refused them, and the internalIds among them.
    private func deadLetters(expecting count: Int) async throws -> (steps: [String: Int], ids: Set<String>) {
        var logger = Logger(label: "soak")
        logger.logLevel = .critical
        let (consumer, events) = AMQPConsumer.streaming(urls: [try AMQPURL(options.rabbitURL)], queue: "\(queue).dead", prefetch: 500, logger: logger)
        consumer.start()
        defer { consumer.stop() }
        var steps: [String: Int] = [:]
        var ids: Set<String> = []
        var seen = 0
        let timer = Task { try await Task.sleep(for: .seconds(30)); consumer.stop() }
        defer { timer.cancel() }
        for await event in events {
            guard case .delivery(let delivery) = event else { continue }
            consumer.ack(delivery)
            steps[delivery.properties.headers["x-error-step"]?.stringValue ?? "none", default: 0] += 1
            if let body = try? JSONSerialization.jsonObject(with: Data(delivery.body)) as? [String: Any], let id = body["internalId"] as? String { ids.insert(id) }
            seen += 1
            if seen >= count { break }
        }
        return (steps, ids)
    }
}

/// A redis-server of the soak's own, appending to a log file, so a restart keeps the keys as production's would.
/// Each soak starts it empty: the keys of an earlier soak (the same ids) would make every message a duplicate.
struct SoakRedis {
    let port: Int
    let folder: URL

    init(port: Int) throws {
        self.port = port
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("soak-redis-\(port)")
        try? FileManager.default.removeItem(at: folder)
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    func start() throws {
        // A server left on the port by a soak that was killed would be used instead, with its keys.
        if ping() {
            _ = try? spawnAndWait(["/usr/bin/redis-cli", "-p", String(port), "shutdown", "nosave"])
            for _ in 0..<100 where ping() { usleep(50_000) }
        }
        // DEBUG from loopback: the slow-Redis fault sends DEBUG SLEEP.
        let pid = try spawn(["/usr/bin/redis-server", "--bind", "127.0.0.1", "--port", String(port), "--dir", folder.path, "--appendonly", "yes",
                             "--appendfsync", "everysec", "--save", "", "--enable-debug-command", "local", "--daemonize", "yes"],
                            environment: [:], log: folder.appendingPathComponent("start.log").path)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        for _ in 0..<100 where !ping() { usleep(50_000) }
    }

    func stop() {
        _ = try? spawnAndWait(["/usr/bin/redis-cli", "-p", String(port), "shutdown"])
        for _ in 0..<100 where ping() { usleep(50_000) }
    }

    private func ping() -> Bool {
        (try? spawnAndWait(["/usr/bin/redis-cli", "-p", String(port), "ping"]).contains("PONG")) ?? false
    }
}

/// Runs a program to its end; returns its output.
func spawnAndWait(_ arguments: [String], environment: [String: String] = [:]) throws -> String {
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("spawn-\(UUID().uuidString).log").path
    defer { try? FileManager.default.removeItem(atPath: log) }
    let pid = try spawn(arguments, environment: environment, log: log)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
    return (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
}

extension Duration {
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

extension Bench {
    /// `scripts/services ARGUMENTS` for the test profile.
    func runServices(_ arguments: [String]) throws -> String {
        try spawnAndWait(["scripts/services"] + arguments, environment: ["SERVICES_PROFILE": "test"])
    }
}
