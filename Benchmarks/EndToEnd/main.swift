// End-to-end benchmark: the release-built worker against the bare I/O loop
// (bench-baseline) on the local RabbitMQ and Redis and an in-process Cloud API stand-in.
//   default     rounds whose order turns (A B, B A, …): throughput, latency (both at half the worker's latest drain rate), peak RSS, CPU; medians and ratios
//   --scaling   throughput by concurrency and by process count (worker and bare loop),
//               and with 10k vs 1M messages queued (cost per message and memory growth)
//   --transports the same runs on each Cloud API transport (HTTP/1.1, TLS HTTP/1.1, TLS HTTP/2)
//               at concurrency 1, 8, 32, 128
//   --redis-memory  Redis memory per message on a Redis of its own, by kind of key
//   --redis-cluster the worker on a Redis Cluster (--cluster-seeds) against the single Redis, the order turning each round
//   --lanes     backlogged senders in the bulk lane at 80/s each, one and three workers (LanePacing.swift)
import AMQPClient
import Foundation
import Logging
import TestSupport

let options = Options(Array(CommandLine.arguments.dropFirst()))
var logger = Logger(label: "bench")
logger.logLevel = .error
guard let transport = StandInTransport.named(options.transport, tlsDirectory: options.tlsDirectory) else {
    throw BenchFailure("--transport \(options.transport): plain, tls or h2")
}
// The other modes make subjects of their own (or an OTLP endpoint) that do not take the stand-in's CA.
guard options.transport == "plain" || [.compare, .builds, .pacing].contains(options.mode) else {
    throw BenchFailure("--transport \(options.transport) is for the worker / bare, builds and pacing runs (transports: --transports-only)")
}
let standIn = StandIn()
let apiURL = try await standIn.start(transport)
let publisher = AMQPPublisher(urls: [try AMQPURL(options.rabbitURL)], logger: logger)
publisher.start()
let bench = try Bench(options: options, standIn: standIn, apiURL: apiURL, caFile: transport.caFile(tlsDirectory: options.tlsDirectory), publisher: publisher)

/// The stand-in must not be the bottleneck: its own capacity under wrk.
@MainActor
func measureStandInCapacity(_ standIn: StandIn = standIn, at apiURL: String = apiURL) {
    guard FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk") else { return print("wrk not installed: stand-in capacity not measured") }
    let log = bench.folder.appendingPathComponent("wrk.log").path
    guard let wrk = try? spawn(["/usr/bin/wrk", "-t2", "-c64", "-d5s", "-s", "Benchmarks/standin-post.lua", "\(apiURL)/v24.0/1055/messages"], environment: [:], log: log) else { return }
    var status: Int32 = 0
    waitpid(wrk, &status, 0)
    let output = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
    let rate = output.split(separator: "\n").first { $0.hasPrefix("Requests/sec:") }?.dropFirst(13).trimmingCharacters(in: .whitespaces) ?? "?"
    print("stand-in capacity under wrk (2 threads, 64 connections, 5 s): \(rate) req/s")
    standIn.reset()
}

func ratio(_ worker: Double, _ baseline: Double) -> String { String(format: "%.2f", baseline == 0 ? 0 : worker / baseline) }

/// A table row of an A/B: the medians of `value` over A's and B's runs, and their ratio.
func medianRow<Run>(_ name: String, _ format: String, _ a: [Run], _ b: [Run], _ value: (Run) -> Double) -> String {
    let a = median(a.map(value))
    let b = median(b.map(value))
    return "| \(name) | \(String(format: format, a)) | \(String(format: format, b)) | \(ratio(a, b)) |"
}

@MainActor
func compare() async throws {
    print("\(options.messages) messages a run (10 % duplicates, 5 types), concurrency \(options.concurrency), \(options.rounds) rounds, worker LOG_LEVEL=\(options.logLevel)")
    let bySubject = try await turnedRounds(options.rounds, first: Subject.worker, second: .baseline) { subject, round, latencyRate in
        let run = try await bench.measureRun(subject, count: options.messages, concurrency: options.concurrency, latencyRate: latencyRate,
                                             label: "r\(round)\(subject == .worker ? "w" : "b")")
        print(String(format: "round %d %-9@ %8.0f msg/s  p50 %6.1f ms  p99 %6.1f ms  max %7.1f ms  peak RSS %6.1f MiB  CPU %.3f s/1000 msg",
                     round, subject.rawValue, run.drain.throughput, run.latency.p50, run.latency.p99, run.latency.max, run.peakMB, run.cpuPerThousand))
        return run
    }
    let runs = Dictionary(uniqueKeysWithValues: bySubject.map { ($0.key.rawValue, $0.value) })
    let drains = runs.mapValues { $0.map(\.drain) }
    let latencies = runs.mapValues { $0.map(\.latency) }
    let footprints = runs.mapValues { $0.map { (peakMB: $0.peakMB, cpuPerThousand: $0.cpuPerThousand) } }
    func row(_ name: String, _ format: String, _ value: (String) -> [Double]) -> String {
        let worker = median(value(Subject.worker.rawValue))
        let baseline = median(value(Subject.baseline.rawValue))
        return "| \(name) | \(String(format: format, worker)) | \(String(format: format, baseline)) | \(ratio(worker, baseline)) |"
    }
    print("\n| median of \(options.rounds) rounds | worker | bare loop | worker / bare |\n|---|---|---|---|")
    print(row("drain throughput (msg/s)", "%.0f") { drains[$0, default: []].map(\.throughput) })
    print(row("latency p50 at a common rate (ms)", "%.1f") { latencies[$0, default: []].map(\.p50) })
    print(row("latency p99 at a common rate (ms)", "%.1f") { latencies[$0, default: []].map(\.p99) })
    print(row("latency max at a common rate (ms)", "%.1f") { latencies[$0, default: []].map(\.max) })
    print(row("peak RSS (MiB)", "%.1f") { footprints[$0, default: []].map(\.peakMB) })
    print(row("CPU seconds per 1,000 messages", "%.3f") { footprints[$0, default: []].map(\.cpuPerThousand) })
    guard options.brokerPID != nil, options.redisPID != nil else { return }
    print("\nwhere the 2 cores went during the drains (CPU ms per message, medians)\n")
    print("| process | worker runs | bare-loop runs |\n|---|---|---|")
    let shares: [(String, (CPUShare) -> Double)] = [("the subject", \.subject), ("RabbitMQ", \.broker), ("Redis", \.redis), ("stand-in and bench process", \.standIn), ("total", \.total)]
    for (name, value) in shares {
        let worker = median(drains[Subject.worker.rawValue, default: []].map { value($0.cpuShare) })
        let baseline = median(drains[Subject.baseline.rawValue, default: []].map { value($0.cpuShare) })
        print(String(format: "| %@ | %.3f | %.3f |", name, worker, baseline))
    }
}

/// One drain of each subject, the worker first at even points and the bare loop first at odd ones.
@MainActor
func turnedPair(_ point: Int, _ drain: (Subject) async throws -> DrainResult) async throws -> (worker: DrainResult, baseline: DrainResult) {
    var results: [Subject: DrainResult] = [:]
    for subject in turnedOrder(point + 1, Subject.worker, .baseline) { results[subject] = try await drain(subject) }
    guard let worker = results[.worker], let baseline = results[.baseline] else { throw BenchFailure("a scaling point without both subjects") }
    return (worker, baseline)
}

@MainActor
func scaling() async throws {
    let count = options.seriesMessages
    print("\nthroughput by concurrency, one process, \(count) messages a point (msg/s; the order turns point to point)\n")
    print("| concurrency | worker | bare loop | worker / bare |\n|---|---|---|---|")
    for (point, concurrency) in [1, 8, 32, 128].enumerated() {
        let (worker, baseline) = try await turnedPair(point) { subject in
            try await bench.measureDrain(subject, count: count, concurrency: concurrency, label: "c\(concurrency)\(subject == .worker ? "w" : "b")")
        }
        print(String(format: "| %d | %.0f | %.0f | %@ |", concurrency, worker.throughput, baseline.throughput, ratio(worker.throughput, baseline.throughput)))
    }
    print("\nthroughput by processes on one queue, concurrency \(options.concurrency) each, \(count) messages a point (msg/s; the order turns point to point)\n")
    print("| processes | worker | bare loop | worker / bare | worker CPU s / 1,000 msg |\n|---|---|---|---|---|")
    for (point, processes) in [1, 3].enumerated() {
        let (worker, baseline) = try await turnedPair(point) { subject in
            try await bench.measureDrain(subject, count: count, concurrency: options.concurrency, processes: processes, label: "p\(processes)\(subject == .worker ? "w" : "b")")
        }
        print(String(format: "| %d | %.0f | %.0f | %@ | %.3f |", processes, worker.throughput, baseline.throughput, ratio(worker.throughput, baseline.throughput), worker.cpuPerThousand))
    }
    print("\nthe worker with 10k and \(options.largeQueue / 1000)k messages queued, concurrency \(options.concurrency)\n")
    print("| queued | msg/s | CPU s / 1,000 msg | RSS at 10 % (MiB) | RSS at the end (MiB) | peak RSS (MiB) |\n|---|---|---|---|---|---|")
    for queued in [10_000, options.largeQueue] {
        let started = ContinuousClock.now
        let result = try await bench.measureDrain(.worker, count: queued, concurrency: options.concurrency, label: "q\(queued / 1000)k")
        print(String(format: "| %dk | %.0f | %.3f | %.1f | %.1f | %.1f |", queued / 1000, result.throughput, result.cpuPerThousand, result.residentEarlyMB, result.residentEndMB, result.peakMB))
        FileHandle.standardError.write(Data("  (\(queued) messages: \(ContinuousClock.now - started) with publishing)\n".utf8))
    }
}

/// Pacing on against off: what pacing costs when it never binds, and its Redis round trips.
@MainActor
func pacingCost() async throws {
    let redis = RedisCommandCounter(port: options.redisPort)
    print("\(options.messages) messages a run, concurrency \(options.concurrency), \(options.rounds) rounds; pacing on: throughput 100000/s per sender, slots through Redis")
    var results: [Bool: [(drain: DrainResult, commands: Double, scripts: Double)]] = [:]
    for round in 1...options.rounds {
        for pacing in turnedOrder(round, false, true) {
            let before = try await redis.calls()
            let drain = try await bench.measureDrain(.worker, count: options.messages, concurrency: options.concurrency, pacing: pacing, label: "pace\(round)\(pacing ? "on" : "off")")
            let after = try await redis.calls()
            let commands = Double(after.total - before.total) / Double(options.messages)
            let scripts = Double(after.scripts - before.scripts) / Double(options.messages)
            results[pacing, default: []].append((drain, commands, scripts))
            print(String(format: "round %d pacing %-3@ %8.0f msg/s  CPU %.3f s/1000 msg  Redis %.3f commands/msg (%.3f scripts)", round, pacing ? "on" : "off",
                         drain.throughput, drain.cpuPerThousand, commands, scripts))
        }
    }
    func row(_ name: String, _ format: String, _ value: ((drain: DrainResult, commands: Double, scripts: Double)) -> Double) -> String {
        medianRow(name, format, results[true, default: []], results[false, default: []], value)
    }
    print("\n| median of \(options.rounds) rounds | pacing on | pacing off | on / off |\n|---|---|---|---|")
    print(row("drain throughput (msg/s)", "%.0f") { $0.drain.throughput })
    print(row("worker CPU seconds per 1,000 messages", "%.3f") { $0.drain.cpuPerThousand })
    print(row("Redis commands per message", "%.3f") { $0.commands })
    print(row("of which Lua scripts (EVALSHA)", "%.3f") { $0.scripts })
}

/// The worker on a Redis Cluster against the single Redis: throughput and the worker's CPU per message.
@MainActor
func clusterCost() async throws {
    guard !options.clusterSeeds.isEmpty else { throw BenchFailure("--redis-cluster needs --cluster-seeds host:port,…") }
    print("\(options.messages) messages a run, concurrency \(options.concurrency), \(options.rounds) rounds; cluster seeds \(options.clusterSeeds)")
    try await sameRunAB(names: ("Redis Cluster (3 masters)", "single Redis"), short: ("cluster", "single"), ratio: "cluster / single") { cluster, round in
        try await bench.measureDrain(.worker, count: options.messages, concurrency: options.concurrency, cluster: cluster ? options.clusterSeeds : "",
                                     label: "redis\(round)\(cluster ? "cluster" : "single")")
    }
}

/// The worker with tracing on (every message traced, spans exported over OTLP/HTTP to the stand-in) against off.
@MainActor
func tracingCost() async throws {
    print("\(options.messages) messages a run, concurrency \(options.concurrency), \(options.rounds) rounds; tracing on: a root trace per message, OTLP/HTTP protobuf to the stand-in")
    try await sameRunAB(names: ("tracing on", "tracing off"), short: ("on", "off"), ratio: "on / off") { tracing, round in
        try await bench.measureDrain(.worker, count: options.messages, concurrency: options.concurrency, tracing: tracing, label: "trace\(round)\(tracing ? "on" : "off")")
    }
}

/// The worker built from this tree against another build (`--worker-before`), the order turning
/// each round (`turnedRounds`): each run drains the messages, then measures latency.
@MainActor
func buildsCost() async throws {
    guard !options.workerBefore.isEmpty else { throw BenchFailure("--builds needs --worker-before PATH (a copy of an earlier release build)") }
    print("\(options.messages) messages a run, concurrency \(options.concurrency), \(options.rounds) rounds; this build \(options.worker) against \(options.workerBefore)")
    let runs = try await turnedRounds(options.rounds, first: false, second: true) { after, round, latencyRate in
        let run = try await bench.measureRun(.worker, count: options.messages, concurrency: options.concurrency,
                                             worker: after ? options.worker : options.workerBefore, latencyRate: latencyRate,
                                             label: "build\(round)\(after ? "after" : "before")")
        print(String(format: "round %d %-7@ %8.0f msg/s  p50 %6.1f ms  p99 %6.1f ms  CPU %.3f s/1000 msg",
                     round, after ? "after" : "before", run.drain.throughput, run.latency.p50, run.latency.p99, run.cpuPerThousand))
        return run
    }
    func row(_ name: String, _ format: String, _ value: (RunResult) -> Double) -> String {
        medianRow(name, format, runs[true, default: []], runs[false, default: []], value)
    }
    print("\n| median of \(options.rounds) rounds | this build | before | after / before |\n|---|---|---|---|")
    print(row("drain throughput (msg/s)", "%.0f") { $0.drain.throughput })
    print(row("latency p50 at a common rate (ms)", "%.1f") { $0.latency.p50 })
    print(row("latency p99 at a common rate (ms)", "%.1f") { $0.latency.p99 })
    print(row("worker CPU seconds per 1,000 messages", "%.3f") { $0.cpuPerThousand })
    print(row("peak RSS (MiB)", "%.1f") { $0.peakMB })
    if options.brokerPID != nil, options.redisPID != nil {
        // What a change to the worker costs or spares the broker and Redis (acks, commands, scripts).
        print(row("RabbitMQ CPU ms a message (drain)", "%.3f") { $0.drain.cpuShare.broker })
        print(row("Redis CPU ms a message (drain)", "%.3f") { $0.drain.cpuShare.redis })
        print(row("all processes' CPU ms a message (drain)", "%.3f") { $0.drain.cpuShare.total })
    }
    func byRound(_ value: (RunResult) -> Double) -> String {
        var ratios: [String] = []
        for (after, before) in zip(runs[true, default: []], runs[false, default: []]) { ratios.append(String(format: "%.2f", value(after) / value(before))) }
        return ratios.joined(separator: ", ")
    }
    print("\nafter / before, round by round: throughput \(byRound { $0.drain.throughput }); p99 at a common rate \(byRound { $0.latency.p99 })")
}

/// Runs `drain` for B then A in odd rounds and A then B in even ones (`turnedOrder`) and prints the medians and ratios.
@MainActor
func sameRunAB(names: (a: String, b: String), short: (a: String, b: String), ratio ratioName: String,
               _ drain: (_ isA: Bool, _ round: Int) async throws -> DrainResult) async throws {
    var results: [Bool: [DrainResult]] = [:]
    for round in 1...options.rounds {
        for isA in turnedOrder(round, false, true) {
            let result = try await drain(isA, round)
            results[isA, default: []].append(result)
            print(String(format: "round %d %-7@ %8.0f msg/s  CPU %.3f s/1000 msg", round, isA ? short.a : short.b, result.throughput, result.cpuPerThousand))
        }
    }
    func row(_ name: String, _ format: String, _ value: (DrainResult) -> Double) -> String {
        medianRow(name, format, results[true, default: []], results[false, default: []], value)
    }
    print("\n| median of \(options.rounds) rounds | \(names.a) | \(names.b) | \(ratioName) |\n|---|---|---|---|")
    print(row("drain throughput (msg/s)", "%.0f") { $0.throughput })
    print(row("worker CPU seconds per 1,000 messages", "%.3f") { $0.cpuPerThousand })
    print(row("Redis CPU ms per message", "%.4f") { $0.cpuShare.redis })
    print(row("broker CPU ms per message", "%.4f") { $0.cpuShare.broker })
    print(row("peak RSS (MiB)", "%.1f") { $0.peakMB })
    let pairs = zip(results[true, default: []], results[false, default: []]).map { String(format: "%.2f", $0.cpuPerThousand / $1.cpuPerThousand) }
    print("\nworker CPU per message, \(ratioName), round by round: \(pairs.joined(separator: ", "))")
}

if ![.soak, .redisMemory, .lanes].contains(options.mode) { measureStandInCapacity() }
if [.compare, .transports, .pacing, .redisCluster, .tracing, .builds].contains(options.mode), options.rounds % 2 == 1 {
    FileHandle.standardError.write(Data("note: \(options.rounds) rounds: one side of each A/B runs second once more than the other, the place a same-build A/A favoured\n".utf8))
}
print("stand-in on \(apiURL) (\(transport))")
switch options.mode {
case .compare: try await compare()
case .scaling: try await scaling()
case .pacing: try await pacingCost()
case .redisCluster: try await clusterCost()
case .tracing: try await tracingCost()
case .builds: try await buildsCost()
case .lanes: try await LanePacing(options: options, publisher: publisher, folder: bench.folder).run()
case .transports: try await TransportMatrix(options: options, publisher: publisher).run()
case .soak: try await Soak(bench: bench, options: options, standIn: standIn).run()
case .redisMemory: try await RedisMemory(options: options, standIn: standIn, apiURL: apiURL, publisher: publisher).run()
}
publisher.stop()
exit(0)
