import Benchmark
import Foundation
import IdempotencyPlugin
import Logging
import OutboundWorkerApp
import PipelineKit
import RedisClient
import RedisPlugin
import WhatsAppPlugin

/// The shipped pipeline, found from this package's folder.
private let pipelinePath = "../../pipelines/outbound.yaml"
private let environment = ["WHATSAPP_ACCESS_TOKEN": "bench", "WHATSAPP_PHONE_NUMBER_ID": "1055"]

private func bodies(_ count: Int, prefix: String) -> [[UInt8]] {
    (0..<count).map { Array(#"{"internalId":"\#(prefix)-\#($0)","to":"+55 11 98765-4321","type":"text","text":{"body":"Your order \#($0) has shipped"}}"#.utf8) }
}

/// The shipped pipeline with only the steps named, over in-memory Redis and a stand-in Cloud API.
private func executor(keeping steps: Set<String>) async throws -> PipelineExecutor {
    let store = MemoryStore(clock: SystemWallClock())
    let registry = BuiltinPlugins.standInRegistry(store: store, cloudAPI: StandInLog())
    guard var definition = PipelineLoader(registry: registry, environment: environment).load(path: pipelinePath).definition else {
        fatalError("the shipped pipeline does not load from \(FileManager.default.currentDirectoryPath)")
    }
    definition.steps = definition.steps.filter { steps.contains($0.name) }
    var logger = Logger(label: "bench")
    logger.logLevel = .error
    return try await PipelineAssembler(registry: registry, workerID: "bench", logger: logger).assemble(definition).executor
}

/// Runs a message that never waits (these steps do not) to its decision, as the worker's loop does.
private func decide(_ message: Message, on executor: PipelineExecutor) async -> Decision {
    var run = PipelineRun(message)
    while true {
        switch await executor.advance(&run) {
        case .decided(let decision): return decision
        case .sent: continue
        case .waiting: fatalError("a benchmark message waited")
        }
    }
}

/// A step that does nothing, so a benchmark sees only the runtime's own cost.
private struct PassStep: Step {
    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome { .next }
}

let benchmarks: @Sendable () -> Void = {
    Benchmark.defaultConfiguration = .init(metrics: [.wallClock, .cpuTotal, .mallocCountTotal, .throughput], maxDuration: .seconds(5))

    Benchmark("YAML load + validation of the shipped pipeline") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(PipelineLoader(registry: BuiltinPlugins.registry, environment: environment).load(path: pipelinePath, variant: "staging"))
        }
    }

    // The runtime alone: messages are parsed before the measurement starts, the steps do nothing.
    Benchmark("message: executor alone, two pass-through steps", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let shipped = try await executor(keeping: ["validate", "transform"])
        let executor = PipelineExecutor(pipelineName: shipped.pipelineName, steps: shipped.steps.map { BoundStep(definition: $0.definition, step: PassStep(), irreversible: false) },
                                        worker: shipped.worker, workerID: "bench", flow: shipped.flow, logger: shipped.logger)
        let messages = bodies(benchmark.scaledIterations.count, prefix: "pass").map { Message(body: $0) }
        benchmark.startMeasurement()
        for index in messages.indices {
            blackHole(await decide(messages[index], on: executor))
        }
    }

    Benchmark("message: executor + validate + transform", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let executor = try await executor(keeping: ["validate", "transform"])
        let messages = bodies(benchmark.scaledIterations.count, prefix: "vt")
        benchmark.startMeasurement()
        for body in messages {
            blackHole(await decide(Message(body: body), on: executor))
        }
    }

    Benchmark("message: whole pipeline, in-memory store and stand-in API", configuration: .init(scalingFactor: .kilo)) { benchmark in
        let executor = try await executor(keeping: ["validate", "idempotency", "transform", "dispatch", "mark_completed"])
        let messages = bodies(benchmark.scaledIterations.count, prefix: "all-\(UUID().uuidString)")
        benchmark.startMeasurement()
        for body in messages {
            blackHole(await decide(Message(body: body), on: executor))
        }
    }

    // The idempotency step on the happy path against the real Redis that scripts/bench starts,
    // next to a bare PING: their ratio is the step's cost in round trips. Each sample runs a
    // thousand calls on one client, connected (and the script loaded) before measuring.
    let redisPort = Int(ProcessInfo.processInfo.environment["REDIS_PORT"] ?? "") ?? 16379
    let configuration = RedisConfiguration(host: "127.0.0.1", port: redisPort, poolSize: 1)

    Benchmark("redis: PING round trip (baseline)", configuration: .init(metrics: [.wallClock, .throughput], scalingFactor: .kilo)) { benchmark in
        let client = RedisClient(configuration: configuration)
        _ = try await client.send(["PING"])
        benchmark.startMeasurement()
        for _ in benchmark.scaledIterations {
            blackHole(try await client.send(["PING"]))
        }
    }

    Benchmark("redis: idempotency step claim (happy path)", configuration: .init(metrics: [.wallClock, .throughput], scalingFactor: .kilo)) { benchmark in
        var logger = Logger(label: "bench")
        logger.logLevel = .error
        let store = RedisStore(client: RedisClient(configuration: configuration), logger: logger)
        let step = IdempotencyStep(store: store, key: try KeyTemplate("bench:{internalId}"), ttl: .seconds(60), lease: .seconds(30), onDuplicate: .ack, onInFlight: .requeue)
        let context = StepContext(stepName: "idempotency", logger: logger, workerID: "bench", clock: SystemWallClock(), flow: FlowControl(logger: logger))
        var warmUp = Message(body: bodies(1, prefix: "warm-\(UUID().uuidString)")[0])
        _ = try await step.run(&warmUp, context)
        let messages = bodies(benchmark.scaledIterations.count, prefix: "claim-\(UUID().uuidString)").map { Message(body: $0) }
        benchmark.startMeasurement()
        for var message in messages {
            blackHole(try await step.run(&message, context))
        }
    }
}
