import Foundation
import PipelineKit
import Testing

/// A registry of small test plugins with the shapes of the real ones.
enum Fixtures {
    struct Recorder: Step {
        let outcome: @Sendable (Message) throws -> StepOutcome
        let undone: UndoLog?

        func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
            try outcome(message)
        }

        func undo(_ message: Message, _ context: StepContext) async {
            undone?.append(context.stepName)
        }
    }

    final class UndoLog: @unchecked Sendable {
        private let lock = NSLock()
        private var names: [String] = []
        func append(_ name: String) { lock.withLock { names.append(name) } }
        var all: [String] { lock.withLock { names } }
    }

    struct NullResource: Resource {
        func health() async -> HealthStatus { .up }
        func shutdown() async {}
    }

    static var registry: PluginRegistry {
        var registry = PluginRegistry()
        registry.register(SourcePlugin(name: "queue", summary: "test source", settings: SettingsSchema([
            SettingSpec("url", .urlList, default: .string("amqp://guest:guest@localhost/%2F"), secrecy: .urlPassword, "broker"),
            SettingSpec("retry", .object(RetryPolicy.settingsSchema), "retry policy"),
        ])) { _ in throw SettingsError(message: "not in tests") })
        registry.register(ResourcePlugin(name: "store", summary: "test store", settings: SettingsSchema([
            SettingSpec("password", .string, default: .string(""), secrecy: .secret, "password"),
            SettingSpec("timeout", .duration, default: .duration(.seconds(1)), "timeout"),
        ])) { _ in NullResource() })
        registry.register(StepPlugin(name: "check", summary: "validates", settings: SettingsSchema([]), guaranteedFields: ["internalId", "to"], optionalFields: ["phoneNumberId"]) { _ in
            Recorder(outcome: { _ in .next }, undone: nil)
        })
        registry.register(StepPlugin(name: "claim", summary: "claims a key", settings: SettingsSchema([
            SettingSpec("store", .resource(uses: "store"), default: .string("store"), "the store"),
            SettingSpec("key", .keyTemplate, default: .string("k:{internalId}"), "key"),
            SettingSpec("ttl", .duration, default: .duration(.seconds(86_400)), "ttl"),
            SettingSpec("mode", .choice(["ack", "requeue"]), default: .string("ack"), "mode"),
            SettingSpec("count", .integer(1...10), default: .integer(1), "count"),
        ])) { _ in Recorder(outcome: { _ in .next }, undone: nil) })
        registry.register(StepPlugin(name: "send", summary: "sends", settings: SettingsSchema([]), defaultOnError: .retry, irreversible: true) { _ in
            Recorder(outcome: { _ in .next }, undone: nil)
        })
        registry.register(StepPlugin(name: "finish", summary: "marks", settings: SettingsSchema([
            SettingSpec("of", .step(uses: "claim"), default: .string("claim"), "the claim step"),
        ])) { _ in Recorder(outcome: { _ in .next }, undone: nil) })
        return registry
    }

    static let pipeline = """
        version: 1
        name: test
        source:
          uses: queue
          with:
            url: ${BROKER_URL:-amqp://guest:secret@localhost:5672/%2F}
            retry: { max_attempts: 3, backoff: [1s, 5s] }
        resources:
          store:
            uses: store
            with: { password: "${STORE_PASSWORD:-}", timeout: 2s }
        steps:
          - name: check
            uses: check
          - name: claim
            uses: claim
            with: { key: "k:{internalId}", ttl: "${TTL:-86400}" }
          - name: send
            uses: send
          - name: finish
            uses: finish
        """

    /// Validates YAML text with the fixture registry.
    static func load(_ text: String, file: String = "p.yaml", environment: [String: String] = [:]) -> PipelineLoader.Result {
        let loader = PipelineLoader(registry: registry, environment: environment)
        do {
            let root = try YAMLDocumentReader.parse(text: text, file: file)
            return loader.validate(root, files: [file])
        } catch {
            return PipelineLoader.Result(definition: nil, diagnostics: error.diagnostics)
        }
    }

    /// Writes files into a fresh temporary folder and returns its path.
    static func folder(_ files: [String: String]) throws -> String {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("pk-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        for (name, text) in files {
            try text.write(to: folder.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return folder.path
    }
}

extension PipelineExecutor {
    /// Runs a message through the steps to its decision, for steps that never wait (a wait is a test
    /// failure: messages that wait are the worker's to park, `WorkerTests`). `message` carries what the steps added.
    func decision(for message: inout Message) async -> Decision {
        var run = PipelineRun(message)
        defer { message = run.message }
        while true {
            switch await advance(&run) {
            case .decided(let decision): return decision
            case .sent: continue
            case .waiting(let wait):
                Issue.record("the message waits (\(wait.reason.rawValue)); only the worker parks messages")
                await abandon(&run)
                return .requeue(after: .zero, step: "pipeline", reason: "waiting", pause: nil)
            }
        }
    }
}
