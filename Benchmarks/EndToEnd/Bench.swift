import AMQPClient
import Foundation
import TestSupport

/// What is measured: the release worker or the bare loop.
enum Subject: String {
    case worker
    case baseline = "bare loop"
}

/// One drain: N messages already queued, P processes consuming them.
struct DrainResult {
    var throughput: Double
    var peakMB: Double
    var cpuPerThousand: Double
    /// Resident memory of the first process when 10 % and all of the messages had been sent.
    var residentEarlyMB: Double
    var residentEndMB: Double
    /// CPU milliseconds per message during the drain, by process: where the machine's time went.
    var cpuShare: CPUShare

    /// The publish rate latency is measured at after this drain: half its throughput (at least 100/s).
    var halfRate: Double { max(100, throughput / 2) }
}

/// CPU per message of each process on the machine during a drain (ms).
struct CPUShare {
    var subject = 0.0
    var broker = 0.0
    var redis = 0.0
    /// This process: the stand-in answering requests, and polling.
    var standIn = 0.0
    var total: Double { subject + broker + redis + standIn }
}

/// A drain and a latency phase of one subject, with its peak memory and CPU over both.
struct RunResult {
    var drain: DrainResult
    var latency: LatencyResult
    var peakMB: Double
    var cpuPerThousand: Double
    /// The publish rate latency was measured at (msg/s).
    var latencyRate: Double
}

/// Latency at a fixed publish rate: publish time to arrival at the stand-in.
struct LatencyResult {
    var p50: Double
    var p99: Double
    var max: Double
}

/// Runs subjects against the local RabbitMQ and Redis and the in-process stand-in.
@MainActor
final class Bench {
    let options: Options
    let standIn: StandIn
    let apiURL: String
    /// The CA the subjects trust for an `https://` stand-in.
    let caFile: String?
    let publisher: AMQPPublisher
    let folder: URL
    /// Makes every message id of this run new to Redis, whatever earlier runs left there.
    private let runID = UUID().uuidString.prefix(8)
    private var nextNumber = 0

    init(options: Options, standIn: StandIn, apiURL: String, caFile: String? = nil, publisher: AMQPPublisher) throws {
        self.options = options
        self.standIn = standIn
        self.apiURL = apiURL
        self.caFile = caFile
        self.publisher = publisher
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try String(contentsOfFile: "pipelines/outbound.yaml", encoding: .utf8).write(to: folder.appendingPathComponent("outbound.yaml"), atomically: true, encoding: .utf8)
    }

    /// A workload whose ids and recipients no earlier workload used.
    func workload(count: Int, prefix: String) -> Workload {
        let workload = Workload(count: count, prefix: "\(runID)-\(prefix)", firstNumber: nextNumber)
        nextNumber += workload.unique + 1
        return workload
    }

    /// Declares a fresh queue, publishes `workload` to it, and returns its name.
    func queue(with workload: Workload, label: String) async throws -> String {
        let queue = "bench.\(label).\(UUID().uuidString.prefix(6))"
        try await publisher.declare(AMQPQueueDeclaration(name: queue))
        try await publish(workload.bodies[...], to: queue, publisher)
        return queue
    }

    func deleteQueues(_ queue: String) async {
        await deleteWorkerQueues(queue, publisher)
    }

    /// Starts `processes` copies of `subject` on `queue`, each with `concurrency` messages in flight.
    /// The worker paces every sender (through Redis) at a limit far above any rate here, so pacing
    /// costs what it costs but never binds; `pacing: false` turns it off. `tracing`: every message
    /// traced, the spans exported to the stand-in (OTLP/HTTP). `worker`: another build of the worker than `--worker`.
    func start(_ subject: Subject, queue: String, concurrency: Int, processes: Int = 1, pacing: Bool = true, cluster: String = "", tracing: Bool = false,
               worker: String? = nil) throws -> [pid_t] {
        try (0..<processes).map { index in
            let log = folder.appendingPathComponent("\(queue)-\(index).log").path
            switch subject {
            case .worker:
                let variant = "c\(concurrency)\(pacing ? "" : "unpaced")"
                let variantFile = folder.appendingPathComponent("outbound.\(variant).yaml")
                try """
                    source:
                      with: { prefetch: \(concurrency * 2), concurrency: \(concurrency) }
                    resources:
                      whatsapp:
                        with: { max_connections: 64, throughput: 100000, pacing: \(pacing) }
                    """.write(to: variantFile, atomically: true, encoding: .utf8)
                return try spawn([worker ?? options.worker, "run"], environment: [
                    "PIPELINE_FILE": folder.appendingPathComponent("outbound.yaml").path, "PIPELINE_ENV": variant,
                    "RABBITMQ_URL": options.rabbitURL, "OUTBOUND_QUEUE": queue, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(options.redisPort),
                    "WHATSAPP_API_URL": apiURL, "WHATSAPP_ACCESS_TOKEN": "bench", "WHATSAPP_PHONE_NUMBER_ID": "1055",
                    "HEALTH_PORT": String(freePort()), "LOG_LEVEL": options.logLevel, "LOG_FORMAT": "json",
                    "WHATSAPP_CA_FILE": caFile ?? "", "REDIS_CLUSTER": cluster,
                ].merging(tracing ? ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": apiURL + "/v1/traces"] : [:]) { $1 }, log: log)
            case .baseline:
                return try spawn([options.baseline, "--queue", queue, "--rabbitmq-url", options.rabbitURL, "--redis-port", String(options.redisPort),
                                  "--api-url", apiURL, "--concurrency", String(concurrency), "--prefetch", String(concurrency * 2),
                                  "--ca-file", caFile ?? ""], environment: [:], log: log)
            }
        }
    }

    /// Waits until every distinct message of `workload` reached the stand-in and `queue` is empty;
    /// throughput runs from the first request to the last.
    func drain(_ workload: Workload, queue: String, pids: [pid_t], timeout: Duration = .seconds(1800)) async throws -> DrainResult {
        let started = ContinuousClock.now
        let servicesBefore = serviceCPU()
        var drainedAt: UInt64 = 0
        var residentEarly = 0
        while ContinuousClock.now - started < timeout {
            let count = standIn.count
            if residentEarly == 0, count >= workload.unique / 10, let pid = pids.first { residentEarly = ProcessUsage(pid).residentKB }
            if count >= workload.unique, (try? await publisher.messageCount(queue)) == 0 {
                drainedAt = DispatchTime.now().uptimeNanoseconds
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        guard drainedAt > 0 else { throw BenchFailure("\(queue) not drained within \(timeout): \(standIn.count) of \(workload.unique) requests") }
        let arrivals = standIn.snapshot
        let first = arrivals.map(\.1).min() ?? 0
        let seconds = Double(max(drainedAt, arrivals.map(\.1).max() ?? 0) - first) / 1e9
        let usages = pids.map(ProcessUsage.init)
        let servicesAfter = serviceCPU()
        let perMessage = 1000 / Double(workload.bodies.count)
        let share = CPUShare(subject: usages.map(\.cpuSeconds).reduce(0, +) * perMessage,
                             broker: (servicesAfter.broker - servicesBefore.broker) * perMessage,
                             redis: (servicesAfter.redis - servicesBefore.redis) * perMessage,
                             standIn: (servicesAfter.standIn - servicesBefore.standIn) * perMessage)
        return DrainResult(
            throughput: Double(workload.bodies.count) / seconds,
            peakMB: Double(usages.map(\.peakKB).max() ?? 0) / 1024,
            cpuPerThousand: usages.map(\.cpuSeconds).reduce(0, +) / Double(workload.bodies.count) * 1000,
            residentEarlyMB: Double(residentEarly) / 1024,
            residentEndMB: Double(usages.first?.residentKB ?? 0) / 1024,
            cpuShare: share
        )
    }

    /// CPU seconds used so far by the broker, Redis and this process.
    private func serviceCPU() -> (broker: Double, redis: Double, standIn: Double) {
        (options.brokerPID.map { ProcessUsage($0).cpuSeconds } ?? 0, options.redisPID.map { ProcessUsage($0).cpuSeconds } ?? 0, ProcessUsage(getpid()).cpuSeconds)
    }

    /// Publishes at `rate` messages a second for the configured seconds and measures
    /// publish-to-stand-in latency of the subject already consuming `queue`.
    func latency(queue: String, rate: Double, prefix: String) async throws -> LatencyResult {
        standIn.reset()
        let paced = workload(count: Int(rate) * options.latencySeconds, prefix: prefix)
        var sentAt: [Int: UInt64] = [:]
        let tick = 0.01
        let perTick = max(1, Int(rate * tick))
        var index = 0
        let phaseStart = ContinuousClock.now
        while index < paced.bodies.count {
            let end = min(index + perTick, paced.bodies.count)
            let now = DispatchTime.now().uptimeNanoseconds
            for position in index..<end where sentAt[paced.numbers[position]] == nil { sentAt[paced.numbers[position]] = now }
            try await publish(paced.bodies[index..<end], to: queue, publisher)
            index = end
            let due = phaseStart + .milliseconds(Int(Double(index / perTick) * tick * 1000))
            if ContinuousClock.now < due { try await Task.sleep(until: due, clock: .continuous) }
        }
        let waitStart = ContinuousClock.now
        while standIn.count < paced.unique, ContinuousClock.now - waitStart < .seconds(60) { try await Task.sleep(for: .milliseconds(20)) }
        let latencies = standIn.snapshot.compactMap { number, arrived in sentAt[number].map { Double(arrived &- $0) / 1e6 } }.sorted()
        guard latencies.count >= paced.unique else { throw BenchFailure("latency phase: \(latencies.count) of \(paced.unique) requests arrived within 60 s") }
        return LatencyResult(p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.last ?? 0)
    }

    /// One full run of `subject`: `count` messages drained, then latency at `latencyRate` (default: half
    /// the rate it drained at); memory and CPU over both phases. `worker`: another build of the worker
    /// than `--worker`. Two subjects compared should be given the same rate: a faster one measured at
    /// half its own, higher, rate would have its tail judged under more load.
    func measureRun(_ subject: Subject, count: Int, concurrency: Int, worker: String? = nil, latencyRate: Double? = nil, label: String) async throws -> RunResult {
        let load = workload(count: count, prefix: label)
        let queue = try await queue(with: load, label: label)
        standIn.reset()
        let pids = try start(subject, queue: queue, concurrency: concurrency, pacing: options.workerPacing,
                             tracing: subject == .worker && options.workerTracing, worker: worker)
        defer { pids.forEach(stop) }
        let drain = try await drain(load, queue: queue, pids: pids)
        let rate = latencyRate ?? drain.halfRate
        let latency = try await latency(queue: queue, rate: rate, prefix: label + "L")
        let usage = ProcessUsage(pids[0])
        pids.forEach(stop)
        await deleteQueues(queue)
        return RunResult(drain: drain, latency: latency, peakMB: Double(usage.peakKB) / 1024,
                         cpuPerThousand: usage.cpuSeconds / Double(count + Int(rate) * options.latencySeconds) * 1000, latencyRate: rate)
    }

    /// Publishes `count` messages, drains them with `subject`, stops it, removes the queue.
    /// `cluster`: the seeds of a Redis Cluster for the worker (empty: the single Redis).
    func measureDrain(_ subject: Subject, count: Int, concurrency: Int, processes: Int = 1, pacing: Bool = true, cluster: String = "", tracing: Bool = false,
                      worker: String? = nil, label: String) async throws -> DrainResult {
        let load = workload(count: count, prefix: label)
        let queue = try await queue(with: load, label: label)
        standIn.reset()
        let pids = try start(subject, queue: queue, concurrency: concurrency, processes: processes, pacing: pacing, cluster: cluster, tracing: tracing,
                             worker: worker)
        let result: DrainResult
        do {
            result = try await drain(load, queue: queue, pids: pids)
        } catch {
            pids.forEach(stop)
            throw error
        }
        pids.forEach(stop)
        await deleteQueues(queue)
        return result
    }
}

/// Deletes the queues the shipped pipeline declares for `queue`: each lane's (`queue`, `.urgent`,
/// `.bulk`) with its four retry queues, and the shared `.dead`. Left behind, thousands of them
/// (ten a worker run) kept the test broker at 1 GiB and 14 % of a core while idle, in every run after.
func deleteWorkerQueues(_ queue: String, _ publisher: AMQPPublisher) async {
    for lane in ["", ".urgent", ".bulk"] {
        for retry in ["", ".retry.1", ".retry.2", ".retry.3", ".retry.4"] { try? await publisher.delete(queue + lane + retry) }
    }
    try? await publisher.delete("\(queue).dead")
}

struct BenchFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

/// The middle value; with an even count, the mean of the two middle ones.
func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    guard !sorted.isEmpty else { return 0 }
    let middle = sorted.count / 2
    return sorted.count % 2 == 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2
}
