import AMQPClient
import Foundation
import TestSupport

/// Backlogged senders at their paced rate (SPEC 8 and 14, issue 25's "every backlogged sender gets
/// its full rate"): `senders × messages` queued interleaved in the bulk lane, the release worker(s)
/// sending through the test stand-in, which answers 130429 past 80 requests a second per number.
/// Reports each sender's span against the ideal at 95 % of 80/s (the worker paces at 95 % of
/// `WHATSAPP_THROUGHPUT`), its busiest second, the 130429s and the slots Redis granted unused.
/// The end-to-end test LaneTests.backloggedSendersEachGetTheirRate asserts the same with the debug
/// worker and a debug stand-in, which cannot feed ten senders' 760 msg/s on two cores.
@MainActor
struct LanePacing {
    let options: Options
    let publisher: AMQPPublisher
    /// The run's folder, with a copy of the shipped pipeline (`Bench.folder`).
    let folder: URL
    /// The limit the stand-in enforces and the worker is told.
    let limit = 80

    /// What one run of `senders` backlogged senders and `workers` workers saw.
    struct Figures {
        var spanOverIdeal: [Double]
        var busiestSecond: [Int]
        var tooMany: Int
        var unusedSlots: Int
        /// Waits that went round a delay queue instead of staying in memory.
        var delayTrips: Int
        var duplicates: Int
        var dead: Int
        /// The workers' CPU seconds per 1,000 messages, from their start (loading the pipeline,
        /// connecting) to the last send seen.
        var cpuPerThousand: Double
    }

    func run() async throws {
        // The shipped pipeline at `--concurrency` (default 32, as shipped) with twice that prefetch per lane (as shipped).
        try "source:\n  with: { prefetch: \(options.concurrency * 2), concurrency: \(options.concurrency) }\n"
            .write(to: folder.appendingPathComponent("outbound.lanes.yaml"), atomically: true, encoding: .utf8)
        print("\(options.lanePerSender) messages per sender in the bulk lane, stand-in enforcing \(limit)/s per number, shipped pipeline at concurrency \(options.concurrency), prefetch \(options.concurrency * 2) a lane, \(options.rounds) rounds; ideal span = (messages − 1) / (0.95 × \(limit)/s)")
        print("| senders | workers | round | span / ideal (min, median, max) | busiest second (max over senders) | 130429 | slots unused | delay-queue trips | sent twice | dead | workers' CPU s / 1,000 msg |\n|---|---|---|---|---|---|---|---|---|---|---|")
        for senders in options.laneSenders {
            for workers in options.laneWorkers {
                for round in 1...options.rounds {
                    let figures = try await measure(senders: senders, workers: workers)
                    let sorted = figures.spanOverIdeal.sorted()
                    print(String(format: "| %d | %d | %d | %.3f, %.3f, %.3f | %d | %d | %d | %d | %d | %d | %.3f |", senders, workers, round,
                                 sorted.first ?? 0, median(sorted), sorted.last ?? 0, figures.busiestSecond.max() ?? 0,
                                 figures.tooMany, figures.unusedSlots, figures.delayTrips, figures.duplicates, figures.dead, figures.cpuPerThousand))
                }
            }
        }
    }

    private func measure(senders count: Int, workers: Int) async throws -> Figures {
        let server = CloudAPIStandInServer()
        let apiURL = try await server.start()
        server.enforceThroughput(perSecond: limit)
        let queue = "bench.lanes.\(UUID().uuidString.prefix(6).lowercased())"
        let run = UUID().uuidString.prefix(8)
        let senders = (0..<count).map { String(300 + $0) }
        let total = options.lanePerSender * count
        // Interleaved, as a campaign of several senders arrives; all queued before the workers start.
        let bodies = (0..<total).map { number in
            Array(#"{"internalId":"lanes-\#(run)-\#(number)","to":"+5511\#(String(format: "%09d", number))","type":"text","text":{"body":"Message \#(number)"},"phoneNumberId":"\#(senders[number % count])"}"#.utf8)
        }
        try await publisher.declare(AMQPQueueDeclaration(name: "\(queue).bulk"))
        try await publish(bodies[...], to: "\(queue).bulk", publisher)
        let healthPorts = (0..<workers).map { _ in freePort() }
        var pids: [pid_t] = []
        // Workers stopped on every path out, an error's too.
        defer {
            pids.forEach(stop)
            server.stop()
        }
        for (index, port) in healthPorts.enumerated() {
            pids.append(try spawn([options.worker, "run"], environment: [
                "PIPELINE_FILE": folder.appendingPathComponent("outbound.yaml").path, "PIPELINE_ENV": "lanes",
                "RABBITMQ_URL": options.rabbitURL, "OUTBOUND_QUEUE": queue, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(options.redisPort),
                "WHATSAPP_API_URL": apiURL, "WHATSAPP_ACCESS_TOKEN": "bench", "WHATSAPP_PHONE_NUMBER_ID": "1055", "WHATSAPP_THROUGHPUT": String(limit),
                "HEALTH_PORT": String(port), "LOG_LEVEL": "warning", "LOG_FORMAT": "json",
            ], log: folder.appendingPathComponent("\(queue)-\(index).log").path))
        }
        let started = ContinuousClock.now
        // Polled gently: the stand-in in this process shares the two cores with the workers.
        while server.sentByRecipient.count < total {
            guard ContinuousClock.now - started < .seconds(600) else {
                pids.forEach(stop)
                pids = []
                await deleteWorkerQueues(queue, publisher)
                throw BenchFailure("\(queue): \(server.sentByRecipient.count) of \(total) sent after 10 minutes")
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        let cpuSeconds = pids.map { ProcessUsage($0).cpuSeconds }.reduce(0, +)
        let ideal = Double(options.lanePerSender - 1) / (Double(limit) * 0.95)
        let requests = server.requests
        let spans = senders.map { sender -> Double in
            let times = requests.filter { $0.sender == sender && $0.succeeded }.map(\.arrived)
            return ((times.max() ?? .now) - (times.min() ?? .now)).seconds / ideal
        }
        let figures = Figures(spanOverIdeal: spans, busiestSecond: senders.map { server.mostInAnyWindow(.seconds(1), sender: $0) },
                              tooMany: server.answered(130429), unusedSlots: workersMetric("outbound_send_slots_unused_total", healthPorts: healthPorts) ?? -1,
                              delayTrips: workersMetric("outbound_waits_through_source_total", healthPorts: healthPorts) ?? -1,
                              duplicates: server.sentByRecipient.values.filter { $0 > 1 }.count,
                              dead: (try? await publisher.messageCount("\(queue).dead")) ?? -1,
                              cpuPerThousand: cpuSeconds / Double(total) * 1000)
        pids.forEach(stop)
        pids = []
        await deleteWorkerQueues(queue, publisher)
        return figures
    }
}
