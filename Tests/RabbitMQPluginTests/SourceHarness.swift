import AMQPClient
import Foundation
import Logging
import PipelineKit
import RabbitMQPlugin
import Synchronization
import TestSupport

/// Builds a `rabbitmq` source on a fresh queue of the test broker and records what it hands out.
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
    func source(_ yaml: String = "", url: String = TestServices.rabbitURL) throws -> RabbitMQSource {
        let settings = try TestSupport.settings("url: \"\(url)\"\nqueue: \(queue)\n" + yaml, schema: SourcePlugin.rabbitMQ.settings)
        let retry = try RetryPolicy(settings: try settings.object("retry"))
        return try RabbitMQSource(settings: settings, retry: retry, logger: Self.logger)
    }

    func cleanUp(_ source: RabbitMQSource) async {
        await inspector.delete(source.topology.declarations.map(\.name))
    }
}

/// A handler whose decision is a function of the message; it records every delivery.
final class RecordingHandler: MessageHandler {
    struct Seen: Sendable {
        var id: String
        var attempt: Int
        var at: ContinuousClock.Instant
        var bodySize: Int
    }

    private let seen = Mutex<[Seen]>([])
    private let decide: @Sendable (Message) async -> Decision

    init(_ decide: @escaping @Sendable (Message) async -> Decision = { _ in .ack(.completed) }) {
        self.decide = decide
    }

    func handle(_ message: Message) async -> Decision {
        seen.withLock { $0.append(Seen(id: message.internalID ?? "?", attempt: message.attempt, at: .now, bodySize: message.body.count)) }
        return await decide(message)
    }

    var all: [Seen] { seen.withLock { $0 } }
    var distinctIDs: Set<String> { Set(all.map(\.id)) }
}

/// Runs a source in the background until `stop`.
final class RunningSource: Sendable {
    let source: RabbitMQSource
    private let task: Task<Void, any Error>

    init(_ source: RabbitMQSource, _ handler: RecordingHandler) {
        self.source = source
        task = Task { try await source.run(handler: { handler }) }
    }

    func stop() async {
        source.beginShutdown()
        _ = await task.result
    }
}

func bodies(_ count: Int, prefix: String) -> [[UInt8]] {
    (0..<count).map { Array(#"{"internalId":"\#(prefix)-\#($0)"}"#.utf8) }
}
