import Foundation

/// Command-line options of bench-e2e.
struct Options {
    enum Mode: String {
        /// Worker against the bare loop, the order turning each round: throughput, latency, memory, CPU.
        case compare
        /// Throughput by concurrency, by process count, and with 10k vs 1M messages queued.
        case scaling
        /// The worker with pacing on (never binding) against pacing off, the order turning each round, and Redis commands per message.
        case pacing
        /// Worker against the bare loop on each Cloud API transport (plain HTTP/1.1, TLS HTTP/1.1,
        /// TLS HTTP/2), at concurrency 1, 8, 32 and 128.
        case transports
        /// Two workers through restarts, a kill -9, SIGHUPs and transient failures, refused events, a
        /// broker-closed connection, a slow Redis and an untrusted certificate (`scripts/soak`).
        case soak
        /// Redis memory per message on a Redis of its own (`scripts/bench redis-memory`).
        case redisMemory = "redis-memory"
        /// The worker on a Redis Cluster against a single Redis, the order turning each round (`scripts/bench redis-cluster`).
        case redisCluster = "redis-cluster"
        /// The worker with tracing on against off, the order turning each round (`scripts/bench tracing`).
        case tracing
        /// The worker built from this tree against another build of it (`--worker-before`), the order
        /// turning each round: what one change buys (`scripts/bench builds -- --worker-before /tmp/outbound-worker.before`).
        case builds
        /// Backlogged senders in the bulk lane at 80/s each, one and three workers (`scripts/bench lanes`).
        case lanes
    }

    var mode = Mode.compare
    var messages = 50_000
    /// Even, so that each side of an A/B runs first as often as second (`turnedRounds`).
    var rounds = 4
    /// `--worker-pacing off`: the worker / bare and builds runs with the worker's pacing off (on, never binding, by default).
    var workerPacing = true
    /// `--worker-tracing on`: the worker of the worker / bare and builds runs traces every message
    /// (OTLP/HTTP to the stand-in): the A/B of a change to tracing's cost (off by default).
    var workerTracing = false
    var concurrency = 32
    var latencySeconds = 10
    /// Messages for each point of the concurrency and process series (scaling mode).
    var seriesMessages = 20_000
    /// The large queue of the flat-cost check (scaling mode).
    var largeQueue = 1_000_000
    /// The soak's time limit.
    var soakMinutes = 20.0
    /// The test certificates (`scripts/services` makes them in `.run/test/tls`), for the TLS transports.
    var tlsDirectory = ".run/test/tls"
    var concurrencies = [1, 8, 32, 128]
    /// The lanes mode: messages per sender, the sender counts and the worker counts measured.
    var lanePerSender = 600
    var laneSenders = [2, 10]
    var laneWorkers = [1, 3]
    /// The transports of the transports mode: `plain`, `tls`, `h2` (all three unless given).
    var transports = ["plain", "tls", "h2"]
    /// `--transport`: how the worker / bare, builds and pacing runs reach the stand-in (`plain` unless given).
    var transport = "plain"
    var worker = ".build/release/outbound-worker"
    var baseline = ".build/release/bench-baseline"
    /// The other build of the worker that `builds` compares this one with.
    var workerBefore = ""
    var rabbitURL = "amqp://guest:guest@127.0.0.1:25680/%2F"
    var redisPort = 16379
    /// Seeds of the Redis Cluster of the redis-cluster mode (`scripts/services`' cluster profile).
    var clusterSeeds = ""
    var logLevel = "info"
    /// The broker's and Redis's processes, to account for their CPU during drains (optional).
    var brokerPID: pid_t?
    var redisPID: pid_t?

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let name = iterator.next() {
            if let flagged = Mode(rawValue: String(name.dropFirst(2))), name.hasPrefix("--") {
                mode = flagged
                continue
            }
            let value = iterator.next() ?? ""
            switch name {
            case "--messages": messages = Int(value) ?? messages
            case "--rounds": rounds = Int(value) ?? rounds
            case "--concurrency": concurrency = Int(value) ?? concurrency
            case "--latency-seconds": latencySeconds = Int(value) ?? latencySeconds
            case "--series-messages": seriesMessages = Int(value) ?? seriesMessages
            case "--large-queue": largeQueue = Int(value) ?? largeQueue
            case "--soak-minutes": soakMinutes = Double(value) ?? soakMinutes
            case "--tls-dir": tlsDirectory = value
            case "--concurrencies": concurrencies = value.split(separator: ",").compactMap { Int($0) }
            case "--per-sender": lanePerSender = Int(value) ?? lanePerSender
            case "--senders": laneSenders = value.split(separator: ",").compactMap { Int($0) }
            case "--workers": laneWorkers = value.split(separator: ",").compactMap { Int($0) }
            case "--transports-only": transports = value.split(separator: ",").map(String.init)
            case "--transport": transport = value
            case "--worker": worker = value
            case "--baseline": baseline = value
            case "--worker-before": workerBefore = value
            case "--rabbitmq-url": rabbitURL = value
            case "--redis-port": redisPort = Int(value) ?? redisPort
            case "--cluster-seeds": clusterSeeds = value
            case "--log-level": logLevel = value
            case "--worker-pacing": workerPacing = value != "off"
            case "--worker-tracing": workerTracing = value == "on"
            case "--broker-pid": brokerPID = pid_t(value)
            case "--redis-pid": redisPID = pid_t(value)
            default: print("unknown option \(name)")
            }
        }
    }
}
