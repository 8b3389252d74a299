import AMQPClient
import Foundation
import Logging
import PipelineKit
import RabbitMQPlugin
import Synchronization
import TestSupport

/// Builds a `rabbitmq` source on a fresh queue of the test broker and a worker that runs a
/// one-step pipeline whose outcome is a function of the message; records every message seen.
struct SourceHarness {
    let queue = uniqueName("test.source")
    let inspector: QueueInspector

    init() throws {
        inspector = try QueueInspector()
    }

    static let logger: Logger = {
        var logger = Logger(label: "test.source")
        logger.logLevel = .critical
        return logger
    }()

    /// The source's settings from YAML, validated against the plugin's declaration.
    func settings(_ yaml: String = "", url: String = TestServices.rabbitURL) throws -> Settings {
        let location = yaml.hasPrefix("url:") ? "" : "url: \"\(url)\"\n"
        return try TestSupport.settings(location + "queue: \(queue)\n" + yaml, schema: SourcePlugin.rabbitMQ.settings)
    }

    func source(_ yaml: String = "", url: String = TestServices.rabbitURL) throws -> RabbitMQSource {
        let settings = try settings(yaml, url: url)
        return try RabbitMQSource(settings: settings, worker: WorkerConfiguration(settings: settings), logger: Self.logger)
    }

    /// A worker on a new source with `yaml` settings, running `step` (`on_error` as given).
    func worker(_ yaml: String = "", url: String = TestServices.rabbitURL, onError: ErrorPolicy = .retry, _ step: any Step) throws -> RunningWorker {
        let settings = try settings(yaml, url: url)
        let configuration = WorkerConfiguration(settings: settings)
        let source = try RabbitMQSource(settings: settings, worker: configuration, logger: Self.logger)
        let flow = FlowControl(logger: Self.logger)
        let bound = BoundStep(definition: StepDefinition(name: "work", uses: "work", settings: Settings(), onError: onError, degradation: .failClosed,
                                                         location: SourceLocation(file: "test", line: 1, column: 1)), step: step, irreversible: false)
        let executor = PipelineExecutor(pipelineName: "test", steps: [bound], worker: configuration, workerID: "test", flow: flow, logger: Self.logger)
        return RunningWorker(PipelineWorker(source: source, pipelines: FixedPipeline(executor), configuration: configuration, flow: flow, logger: Self.logger), source: source)
    }

    /// A broker user of the test's own (every permission on `/`), so the broker can close just its
    /// connections; `url` logs in as it. `delete` when done.
    struct BrokerUser {
        let name: String
        let url: String

        init(_ prefix: String) throws {
            name = uniqueName(prefix)
            try TestServices.rabbitmqctl(["add_user", name, "\(prefix)-password"])
            try TestServices.rabbitmqctl(["set_permissions", "-p", "/", name, ".*", ".*", ".*"])
            let broker = try AMQPURL(TestServices.rabbitURL)
            url = "amqp://\(name):\(prefix)-password@\(broker.host):\(broker.port)/%2F"
        }

        /// Closes every connection of the user (`rabbitmqctl close_all_user_connections`).
        func closeConnections() throws {
            try TestServices.rabbitmqctl(["close_all_user_connections", name, "closed by a test"])
        }

        /// Closes the user's connections that consume (not its publisher's).
        func closeConsumingConnections() throws {
            let channels = try TestServices.rabbitmqctlOutput(["list_channels", "connection", "user", "consumer_count", "--quiet", "--no-table-headers"])
            let consuming = channels.split(separator: "\n").compactMap { line -> String? in
                let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " }).map(String.init)
                return fields.count == 3 && fields[1] == name && (Int(fields[2]) ?? 0) > 0 ? fields[0] : nil
            }
            guard !consuming.isEmpty else { throw TestFailure("no consuming connection of \(name): \(channels)") }
            for connection in Set(consuming) { try TestServices.rabbitmqctl(["close_connection", connection, "closed by a test"]) }
        }

        func delete() {
            try? TestServices.rabbitmqctl(["delete_user", name])
        }
    }

    func cleanUp(_ source: RabbitMQSource) async {
        // Not the retry queues (empty by now): see EndToEndHarness.cleanUp.
        await inspector.delete(source.topology.declarations.map(\.name).filter { !$0.contains(".retry.") })
    }
}

/// A step whose outcome is a function of the message; it records every message it sees.
final class RecordingStep: Step {
    struct Seen: Sendable {
        var id: String
        var attempt: Int
        var at: ContinuousClock.Instant
        var bodySize: Int
    }

    private let seen = Mutex<[Seen]>([])
    private let outcome: @Sendable (Message) async throws -> StepOutcome

    init(_ outcome: @escaping @Sendable (Message) async throws -> StepOutcome = { _ in .next }) {
        self.outcome = outcome
    }

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        seen.withLock { $0.append(Seen(id: message.internalID ?? "?", attempt: message.attempt, at: .now, bodySize: message.body.count)) }
        return try await outcome(message)
    }

    var all: [Seen] { seen.withLock { $0 } }
    var distinctIDs: Set<String> { Set(all.map(\.id)) }
    func count(_ id: String) -> Int { all.filter { $0.id == id }.count }
}

/// A worker running in the background until `stop`.
final class RunningWorker: Sendable {
    let worker: PipelineWorker
    let source: RabbitMQSource
    private let task: Task<Void, any Error>

    init(_ worker: PipelineWorker, source: RabbitMQSource) {
        self.worker = worker
        self.source = source
        task = Task { try await worker.run() }
    }

    /// Begins the shutdown and waits for the worker to finish; returns how long that took.
    @discardableResult
    func stop() async -> Duration {
        let started = ContinuousClock.now
        worker.beginShutdown()
        _ = await task.result
        return ContinuousClock.now - started
    }

    /// The worker's end, when it ended by itself (an error at start).
    var result: Result<Void, any Error> {
        get async { await task.result }
    }
}

func bodies(_ count: Int, prefix: String) -> [[UInt8]] {
    (0..<count).map { Array(#"{"internalId":"\#(prefix)-\#($0)"}"#.utf8) }
}
