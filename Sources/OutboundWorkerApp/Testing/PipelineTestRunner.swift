import Foundation
import IdempotencyPlugin
import Logging
import PipelineKit
import WhatsAppPlugin

/// Runs pipeline test files: the real steps, in-memory Redis and Cloud API, a clock
/// the cases advance, and the decisions recorded as the RabbitMQ source would carry them out.
struct PipelineTestRunner {
    struct CaseReport {
        var name: String
        var location: SourceLocation
        var failures: [String]
        var passed: Bool { failures.isEmpty }
    }

    struct FileReport {
        var file: String
        var cases: [CaseReport]
        /// Problems that make the file unusable (it then fails as a whole).
        var errors: [Diagnostic]
        var passed: Bool { errors.isEmpty && cases.allSatisfy(\.passed) }
    }

    var environment: [String: String]

    func run(file: String) async -> FileReport {
        var report = FileReport(file: file, cases: [], errors: [])
        let root: ConfigNode
        do {
            root = try YAMLDocumentReader.read(path: file)
        } catch {
            report.errors = error.diagnostics
            return report
        }
        guard let entries = root.entries else {
            report.errors = [.error(at: root.location, "a test file must be a map with `pipeline` and `cases`, found \(root.kindName)")]
            return report
        }
        let keys = ["pipeline", "env", "environment", "cases"]
        for entry in entries where !keys.contains(entry.key) {
            report.errors.append(.error(at: entry.keyLocation, "unknown key `\(entry.key)`\(Suggestion.hint(for: entry.key, in: keys)) (known: \(keys.joined(separator: ", ")))"))
        }
        guard let pipelineNode = root["pipeline"], let pipelinePath = pipelineNode.scalar else {
            report.errors.append(.error(at: root.location, "missing `pipeline` (the pipeline file, relative to this file)"))
            return report
        }
        var caseDiagnostics: [Diagnostic] = []
        let cases = (root["cases"]?.items ?? []).compactMap { PipelineTestCase.parse($0, diagnostics: &caseDiagnostics) }
        report.errors += caseDiagnostics
        if root["cases"]?.items?.isEmpty ?? true {
            report.errors.append(.error(at: root["cases"]?.location ?? root.location, "`cases` must be a non-empty list"))
        }
        guard report.errors.isEmpty else { return report }

        var variables = environment
        for entry in root["environment"]?.entries ?? [] { variables[entry.key] = entry.value.scalar ?? "" }
        let clock = ManualWallClock()
        let store = MemoryIdempotencyStore(clock: clock)
        let cloudAPI = StandInCloudAPI()
        let registry = BuiltinPlugins.standInRegistry(store: store, cloudAPI: cloudAPI)
        let path = pipelinePath.hasPrefix("/") ? pipelinePath
            : URL(fileURLWithPath: file).deletingLastPathComponent().appendingPathComponent(pipelinePath).standardized.path
        let loaded = PipelineLoader(registry: registry, environment: variables).load(path: path, variant: root["env"]?.scalar)
        guard let definition = loaded.definition else {
            report.errors = loaded.diagnostics.filter { $0.severity == .error }
            return report
        }
        var logger = Logger(label: "outbound-worker.test")
        logger.logLevel = .critical
        let assembled: AssembledPipeline
        do {
            assembled = try await PipelineAssembler(registry: registry, workerID: "pipeline-test", clock: clock, logger: logger).assemble(definition)
        } catch {
            report.errors = [.error(at: pipelineNode.location, "cannot build the pipeline: \(error)")]
            return report
        }
        let keyTemplate = definition.steps.first { $0.uses == "idempotency" }.flatMap { try? $0.settings.keyTemplate("key") }
        for testCase in cases {
            if let advance = testCase.advance { clock.advance(by: advance) }
            if let seed = testCase.seedKey, let key = keyTemplate?.render({ testCase.input?[$0]?.stringValue }) {
                let value = seed == "processing" ? KeyState.processing(owner: "another-worker", since: clock.now()) : KeyState.completed(wamid: "wamid.seeded", at: clock.now())
                try? await store.set(key, value.encoded(), ttl: .seconds(86_400))
            }
            store.setAvailable(testCase.redisAvailable)
            cloudAPI.setScript(testCase.script)
            let requestsBefore = cloudAPI.requests.count
            var message = Message(body: testCase.body, attempt: testCase.attempt)
            let decision = await assembled.executor.process(&message)
            store.setAvailable(true)
            let sent = cloudAPI.requests.dropFirst(requestsBefore).last
            var failures = TestExpectations.compare(testCase, decision: decision, sent: sent)
            if let expected = testCase.expect.key {
                let key = keyTemplate?.render { testCase.input?[$0]?.stringValue }
                failures += await TestExpectations.compareKey(expected, key: key, store: store)
            }
            report.cases.append(CaseReport(name: testCase.name, location: testCase.location, failures: failures))
        }
        for resource in assembled.resources.byName.values { await resource.shutdown() }
        return report
    }
}
