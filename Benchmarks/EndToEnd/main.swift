// End-to-end benchmark: the release-built worker against the bare I/O loop
// (bench-baseline), A B A B, on the local RabbitMQ and Redis and an in-process Cloud
// API stand-in. Prints a Markdown table of medians and the worker/baseline ratio.
import AMQPClient
import Foundation
import Hummingbird
import Logging
import NIOCore
import Synchronization

struct Options {
    var messages = 50_000
    var rounds = 3
    var concurrency = 32
    var latencySeconds = 10
    var worker = ".build/release/outbound-worker"
    var baseline = ".build/release/bench-baseline"
    var rabbitURL = "amqp://guest:guest@127.0.0.1:25680/%2F"
    var redisPort = 16379
    var logLevel = "info"

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let name = iterator.next() {
            let value = iterator.next() ?? ""
            switch name {
            case "--messages": messages = Int(value) ?? messages
            case "--rounds": rounds = Int(value) ?? rounds
            case "--concurrency": concurrency = Int(value) ?? concurrency
            case "--latency-seconds": latencySeconds = Int(value) ?? latencySeconds
            case "--worker": worker = value
            case "--baseline": baseline = value
            case "--rabbitmq-url": rabbitURL = value
            case "--redis-port": redisPort = Int(value) ?? redisPort
            case "--log-level": logLevel = value
            default: FileHandle.standardError.write(Data("unknown option \(name)\n".utf8))
            }
        }
    }
}

/// Records when each recipient's request arrived.
final class StandIn: Sendable {
    struct To: Decodable { var to: String }
    private let arrivals = Mutex<[(Int, UInt64)]>([])

    func reset() { arrivals.withLock { $0.removeAll(keepingCapacity: true) } }
    var snapshot: [(Int, UInt64)] { arrivals.withLock { $0 } }
    var count: Int { arrivals.withLock { $0.count } }

    func start() async throws -> Int {
        let router = Router()
        router.post("/:version/:phone/messages") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 1 << 16)
            let now = DispatchTime.now().uptimeNanoseconds
            if let to = try? JSONDecoder().decode(To.self, from: Data(body.readableBytesView)), let number = Int(to.to.dropFirst(6)) {
                self.arrivals.withLock { $0.append((number, now)) }
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: #"{"messaging_product":"whatsapp","messages":[{"id":"wamid.bench"}]}"#)))
        }
        let (ports, sink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { sink.yield($0.localAddress?.port ?? 0) }, logger: Logger(label: "standin"))
        Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        return await iterator.next() ?? 0
    }
}

/// The messages of one run: mixed types, every tenth a duplicate of an earlier id.
func messages(count: Int, prefix: String, firstNumber: Int) -> (bodies: [[UInt8]], numbers: [Int], unique: Int) {
    var bodies: [[UInt8]] = []
    var numbers: [Int] = []
    var unique = 0
    for index in 0..<count {
        let number: Int
        if index % 10 == 9, unique > 0 {
            number = firstNumber + (index * 7919) % unique
        } else {
            number = firstNumber + unique
            unique += 1
        }
        let to = "+55119\(String(format: "%08d", number))"
        let id = "\(prefix)-\(number)"
        let body: String
        switch number % 5 {
        case 0: body = #"{"internalId":"\#(id)","to":"\#(to)","type":"text","text":{"body":"Your order \#(number) has shipped"},"metadata":{"n":\#(number)}}"#
        case 1: body = #"{"internalId":"\#(id)","to":"\#(to)","type":"template","template":{"name":"order_update","language":"en_US","components":[{"type":"body","parameters":[{"type":"text","text":"\#(number)"}]}]}}"#
        case 2: body = #"{"internalId":"\#(id)","to":"\#(to)","type":"image","media":{"link":"https://example.com/\#(number).png","caption":"Receipt"}}"#
        case 3: body = #"{"internalId":"\#(id)","to":"\#(to)","type":"location","location":{"latitude":-23.55,"longitude":-46.63,"name":"Store"}}"#
        default: body = #"{"internalId":"\#(id)","to":"\#(to)","type":"interactive","interactive":{"type":"button","body":{"text":"Confirm?"},"action":{"buttons":[{"type":"reply","reply":{"id":"y","title":"Yes"}}]}}}"#
        }
        bodies.append(Array(body.utf8))
        numbers.append(number)
    }
    return (bodies, numbers, unique)
}

func publish(_ bodies: ArraySlice<[UInt8]>, to queue: String, _ publisher: AMQPPublisher) async throws {
    for start in stride(from: bodies.startIndex, to: bodies.endIndex, by: 1000) {
        let slice = bodies[start..<min(start + 1000, bodies.endIndex)]
        try await withThrowingTaskGroup(of: Void.self) { group in
            for body in slice { group.addTask { try await publisher.publish(routingKey: queue, body: body, properties: .persistentJSON) } }
            try await group.waitForAll()
        }
    }
}

/// Peak resident memory (kB) and CPU seconds of a process, from /proc.
func usage(_ pid: pid_t) -> (peakKB: Int, cpuSeconds: Double) {
    let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
    let peak = status.split(separator: "\n").first { $0.hasPrefix("VmHWM:") }.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
    let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
    let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
    let ticks = fields.count > 12 ? (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0) : 0
    return (peak, ticks / Double(sysconf(Int32(_SC_CLK_TCK))))
}

func spawn(_ arguments: [String], environment: [String: String], log: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0)=\($1)" }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = variables.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    var pid = pid_t()
    guard posix_spawn(&pid, arguments[0], &actions, nil, argv, envp) == 0 else { throw CancellationError() }
    return pid
}

struct Result {
    var throughput: Double
    var p50: Double
    var p99: Double
    var max: Double
    var peakMB: Double
    var cpuPerThousand: Double
}

func percentile(_ sorted: [Double], _ p: Double) -> Double {
    sorted.isEmpty ? 0 : sorted[min(sorted.count - 1, Int(Double(sorted.count - 1) * p))]
}

func median(_ values: [Double]) -> Double {
    let sorted = values.sorted()
    return sorted.isEmpty ? 0 : sorted[sorted.count / 2]
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
var logger = Logger(label: "bench")
logger.logLevel = .error
let standIn = StandIn()
let port = try await standIn.start()
let apiURL = "http://127.0.0.1:\(port)"
let publisher = AMQPPublisher(urls: [try AMQPURL(options.rabbitURL)], logger: logger)
publisher.start()
let folder = FileManager.default.temporaryDirectory.appendingPathComponent("bench-\(UUID().uuidString)")
try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
try String(contentsOfFile: "pipelines/outbound.yaml", encoding: .utf8).write(to: folder.appendingPathComponent("outbound.yaml"), atomically: true, encoding: .utf8)
try """
    source:
      with: { prefetch: \(options.concurrency * 2), concurrency: \(options.concurrency) }
    resources:
      whatsapp:
        with: { max_connections: 64 }
    """.write(to: folder.appendingPathComponent("outbound.bench.yaml"), atomically: true, encoding: .utf8)

if FileManager.default.isExecutableFile(atPath: "/usr/bin/wrk") {
    let wrkLog = folder.appendingPathComponent("wrk.log").path
    let wrk = try spawn(["/usr/bin/wrk", "-t2", "-c64", "-d5s", "-s", "Benchmarks/standin-post.lua", "\(apiURL)/v24.0/1055/messages"], environment: [:], log: wrkLog)
    var status: Int32 = 0
    waitpid(wrk, &status, 0)
    let output = (try? String(contentsOfFile: wrkLog, encoding: .utf8)) ?? ""
    let rate = output.split(separator: "\n").first { $0.hasPrefix("Requests/sec:") } ?? "Requests/sec: ?"
    print("stand-in capacity under wrk (2 threads, 64 connections, 5 s): \(rate.dropFirst(13).trimmingCharacters(in: .whitespaces)) req/s")
    standIn.reset()
} else {
    print("wrk not installed: stand-in capacity not measured")
}
print("stand-in on \(apiURL); \(options.messages) messages a run (10 % duplicates, 5 types), concurrency \(options.concurrency), \(options.rounds) rounds, worker LOG_LEVEL=\(options.logLevel)")
var results: [String: [Result]] = [:]
var nextNumber = 0
for round in 1...options.rounds {
    for subject in ["worker", "baseline"] {
        let queue = "bench.\(round).\(subject).\(UUID().uuidString.prefix(6))"
        let prefix = "b\(round)\(subject.prefix(1))\(UUID().uuidString.prefix(6))"
        try await publisher.declare(AMQPQueueDeclaration(name: queue))
        let batch = messages(count: options.messages, prefix: prefix, firstNumber: nextNumber)
        nextNumber += batch.unique + 1
        try await publish(batch.bodies[...], to: queue, publisher)
        standIn.reset()
        let log = folder.appendingPathComponent("\(subject)-\(round).log").path
        let pid: pid_t
        if subject == "worker" {
            pid = try spawn([options.worker, "run"], environment: [
                "PIPELINE_FILE": folder.appendingPathComponent("outbound.yaml").path, "PIPELINE_ENV": "bench",
                "RABBITMQ_URL": options.rabbitURL, "OUTBOUND_QUEUE": queue, "REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(options.redisPort),
                "WHATSAPP_API_URL": apiURL, "WHATSAPP_ACCESS_TOKEN": "bench", "WHATSAPP_PHONE_NUMBER_ID": "1055",
                "HEALTH_PORT": String(Int.random(in: 20000...29999)), "LOG_LEVEL": options.logLevel, "LOG_FORMAT": "json",
            ], log: log)
        } else {
            pid = try spawn([options.baseline, "--queue", queue, "--rabbitmq-url", options.rabbitURL, "--redis-port", String(options.redisPort),
                             "--api-url", apiURL, "--concurrency", String(options.concurrency), "--prefetch", String(options.concurrency * 2)], environment: [:], log: log)
        }
        let started = ContinuousClock.now
        var drainedAt: UInt64 = 0
        while ContinuousClock.now - started < .seconds(600) {
            if standIn.count >= batch.unique, (try? await publisher.messageCount(queue)) == 0 {
                drainedAt = DispatchTime.now().uptimeNanoseconds
                break
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        let arrivals = standIn.snapshot
        let first = arrivals.map(\.1).min() ?? 0
        let throughput = Double(options.messages) / (Double(max(drainedAt, arrivals.map(\.1).max() ?? 0) - first) / 1e9)

        // Latency at half the measured rate: publish times against arrival times at the stand-in.
        standIn.reset()
        let rate = max(100, throughput / 2)
        let paced = messages(count: Int(rate) * options.latencySeconds, prefix: prefix + "L", firstNumber: nextNumber)
        nextNumber += paced.unique + 1
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
        let (peakKB, cpu) = usage(pid)
        kill(pid, SIGTERM)
        var status: Int32 = 0
        waitpid(pid, &status, 0)
        let result = Result(throughput: throughput, p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.last ?? 0,
                            peakMB: Double(peakKB) / 1024, cpuPerThousand: cpu / Double(options.messages + paced.bodies.count) * 1000)
        results[subject, default: []].append(result)
        print(String(format: "round %d %-8@ %8.0f msg/s  p50 %6.1f ms  p99 %6.1f ms  max %7.1f ms  peak RSS %6.1f MiB  CPU %.3f s/1000 msg",
                     round, subject, result.throughput, result.p50, result.p99, result.max, result.peakMB, result.cpuPerThousand))
        try? await publisher.delete(queue)
        for suffix in [".dead", ".retry.1", ".retry.2", ".retry.3", ".retry.4"] { try? await publisher.delete(queue + suffix) }
    }
}
func row(_ name: String, _ results: [String: [Result]], _ key: (Result) -> Double, _ format: String) -> String {
    let worker = median(results["worker", default: []].map(key))
    let baseline = median(results["baseline", default: []].map(key))
    return "| \(name) | \(String(format: format, worker)) | \(String(format: format, baseline)) | \(String(format: "%.2f", baseline == 0 ? 0 : worker / baseline)) |"
}
print("\n| median of \(options.rounds) rounds | worker | bare loop | worker / bare |\n|---|---|---|---|")
print(row("drain throughput (msg/s)", results, \.throughput, "%.0f"))
print(row("latency p50 at half rate (ms)", results, \.p50, "%.1f"))
print(row("latency p99 at half rate (ms)", results, \.p99, "%.1f"))
print(row("latency max at half rate (ms)", results, \.max, "%.1f"))
print(row("peak RSS (MiB)", results, \.peakMB, "%.1f"))
print(row("CPU seconds per 1,000 messages", results, \.cpuPerThousand, "%.3f"))
publisher.stop()
exit(0)
