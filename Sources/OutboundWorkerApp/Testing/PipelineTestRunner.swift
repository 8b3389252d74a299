import Foundation
import IdempotencyPlugin
import Logging
import PipelineKit
import RedisPlugin
import WebhookPlugin
import WhatsAppPlugin

/// Runs pipeline test files on the production `PipelineWorker`: the real steps and loop, in-memory
/// Redis and Cloud API, a source that hands out each case's messages, and a virtual clock that
/// moves to the earliest wait's end once every message in hand waits.
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

    /// What one message of a case did.
    struct MessageResult {
        var decision: Decision
        var waits: [Wait]
        /// What the source answered (sources that answer their senders).
        var response: Int?
        /// The events the pipeline's sink would publish.
        var events: [PreparedEvent] = []
        /// The source refused the input before the pipeline.
        var refused = false
        /// The decision with the message as the steps left it.
        var outcome: Outcome

        init(decision: Decision, waits: [Wait], response: Int? = nil, outcome: Outcome? = nil) {
            self.decision = decision
            self.waits = waits
            self.response = response
            self.outcome = outcome ?? Outcome(decision: decision, message: Message(body: []), sent: false)
        }
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
        let clock = ManualWallClock()
        let store = MemoryStore(clock: clock)
        let cloudAPI = StandInLog()
        let registry = BuiltinPlugins.standInRegistry(store: store, cloudAPI: cloudAPI)
        let outcomes = Decision.outcomeNames + Set(registry.steps.values.flatMap(\.outcomes).map(\.rawValue)).sorted()
        var caseDiagnostics: [Diagnostic] = []
        let cases = (root["cases"]?.items ?? []).compactMap { PipelineTestCase.parse($0, outcomes: outcomes, diagnostics: &caseDiagnostics) }
        report.errors += caseDiagnostics
        if root["cases"]?.items?.isEmpty ?? true {
            report.errors.append(.error(at: root["cases"]?.location ?? root.location, "`cases` must be a non-empty list"))
        }
        guard report.errors.isEmpty else { return report }

        var variables = environment.merging(BuiltinPlugins.standInEnvironment) { set, _ in set }
        for entry in root["environment"]?.entries ?? [] { variables[entry.key] = entry.value.scalar ?? "" }
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
        let keyTemplate = definition.steps.first { $0.uses == "idempotency" }.map { $0.settings[IdempotencySettings.key] }
        let admission = registry.sources[definition.source.uses]?.admission
        let sink = definition.events.flatMap { events in registry.sinks[events.uses].map { ($0, SinkBuildContext(settings: events.settings, pipelineName: definition.name, workerID: "pipeline-test", logger: logger)) } }
        for testCase in cases {
            if let advance = testCase.advance { clock.advance(by: advance) }
            if let seed = testCase.seedKey, let key = keyTemplate?.render({ testCase.input?[$0]?.stringValue }) {
                let value = seed == "processing" ? KeyState.processing(owner: "another-worker", since: clock.now()) : KeyState.completed(wamid: "wamid.seeded", at: clock.now())
                try? await store.set(key, value.encoded(), ttl: .seconds(86_400))
            }
            for (key, value) in testCase.seed {
                switch value {
                case .string(let text): try? await store.set(key, text, ttl: .seconds(86_400))
                case .members(let members): _ = try? await store.addMembers(members, to: key)
                }
            }
            store.setAvailable(testCase.redisAvailable)
            cloudAPI.script(testCase.answers)
            let requestsBefore = cloudAPI.received.count
            let started = clock.now()
            var results: [MessageResult] = []
            for body in bodies(of: testCase) {
                // A source that checks its input (a signature) may refuse it before the pipeline.
                let headers = (testCase.signed ? admission?.authenticate(body, definition.source.settings) ?? [:] : [:]).merging(testCase.headers) { $1 }
                if let admission, let refusal = admission.check(body, headers, definition.source.settings) {
                    var refused = MessageResult(decision: .ack(.dropped(Failure(step: "source", reason: refusal.reason))), waits: [], response: refusal.status)
                    refused.refused = true
                    results.append(refused)
                }
            }
            if results.isEmpty {
                // Statuses of lost answers reach the statuses pipeline when the virtual clock passes them.
                let settleDue: @Sendable (Date) async -> Void = { now in
                    let due = cloudAPI.statuses(dueBy: now)
                    guard !due.isEmpty, let keyTemplate else { return }
                    let sends = due.compactMap { status in
                        keyTemplate.render { $0 == "internalId" ? status.internalID : nil }.map { SettledSend(key: $0, wamid: status.wamid, internalID: status.internalID) }
                    }
                    _ = try? await store.settle(sends, at: now)
                }
                let lanes = Self.lanes(of: testCase, in: definition)
                guard lanes.allSatisfy({ $0 != nil }) || testCase.lanes.isEmpty else {
                    let known = SourceLanes.of(definition).all.map(\.name)
                    report.cases.append(CaseReport(name: testCase.name, location: testCase.location,
                                                   failures: ["lanes: the pipeline's source has \(known.isEmpty ? "no lanes" : "the lanes " + known.joined(separator: ", ")), not \(testCase.lanes.joined(separator: ", "))"]))
                    continue
                }
                results = await runOnWorker(bodies(of: testCase), lanes: lanes, attempt: testCase.attempt, assembled: assembled, clock: clock, logger: logger, settleDue: settleDue)
                for index in results.indices {
                    results[index].response = admission?.respond(results[index].decision)
                }
            }
            if let (plugin, context) = sink {
                // Input the source refused never reaches the pipeline, nor the sink.
                for index in results.indices where !results[index].refused {
                    results[index].events = plugin.render(results[index].outcome, context)
                }
            }
            store.setAvailable(true)
            let received = Array(cloudAPI.received.dropFirst(requestsBefore))
            var failures: [String] = []
            for (index, result) in results.enumerated() {
                let prefix = results.count > 1 ? "copy \(index + 1): " : ""
                failures += TestExpectations.compare(testCase, result: result, sent: received.last?.request).map { prefix + $0 }
                if results.count > 1, failures.count > 5 { break }
            }
            failures += TestExpectations.compareRequests(testCase.expect, received: received, since: started, copies: bodies(of: testCase))
            if let expected = testCase.expect.key {
                let key = keyTemplate?.render { testCase.input?[$0]?.stringValue }
                failures += await TestExpectations.compareKey(expected, key: key, store: store)
            }
            report.cases.append(CaseReport(name: testCase.name, location: testCase.location, failures: failures))
        }
        for resource in assembled.resources.byName.values { await resource.shutdown() }
        return report
    }

    /// The lane of each copy of a case (nil: no lane, or one the source does not have).
    private static func lanes(of testCase: PipelineTestCase, in definition: PipelineDefinition) -> [Lane?] {
        let known = SourceLanes.of(definition).all
        let names = testCase.lanes.count == 1 ? Array(repeating: testCase.lanes[0], count: testCase.copies) : testCase.lanes
        guard !names.isEmpty else { return Array(repeating: nil, count: testCase.copies) }
        return names.map { name in known.first { $0.name == name } }
    }

    /// The bodies of a case: the input, or `repeat` copies of it with distinct internalIds.
    private func bodies(of testCase: PipelineTestCase) -> [[UInt8]] {
        guard testCase.copies > 1, case .object(var members)? = testCase.input else { return [testCase.body] }
        let id = members["internalId"]?.stringValue ?? "copy"
        return (1...testCase.copies).map { number in
            members["internalId"] = .string("\(id)-\(number)")
            return JSONValue.object(members).encodedBytes()
        }
    }

    /// Runs the messages on the production `PipelineWorker`, in a fixed order: each message is
    /// handed out and goes as far as it can — until it is settled, or sleeps on the virtual clock (a
    /// wait, a slow answer) — before the next; once every message in hand sleeps, the clock moves to
    /// the earliest deadline (statuses due by then are settled first) and wakes that one sleeper.
    /// Every wait stays in memory (`max_park` beyond any wait): a case ends at each message's decision.
    private func runOnWorker(_ bodies: [[UInt8]], lanes: [Lane?], attempt: Int, assembled: AssembledPipeline, clock: ManualWallClock, logger: Logger,
                             settleDue: @Sendable (Date) async -> Void) async -> [MessageResult] {
        let source = TestSource(lanes: SourceLanes.of(assembled.definition))
        let sink = FirstOutcomes()
        var configuration = assembled.definition.worker
        configuration.maxPark = .seconds(400 * 86_400)
        // (No other worker here could take a claim over while its message waits.)
        configuration.waitsWithinHolds = false
        configuration.longestInMemory = nil
        let worker = PipelineWorker(source: source, pipelines: FixedPipeline(assembled.executor), configuration: configuration,
                                    flow: assembled.executor.flow, sink: sink, logger: logger)
        let running = Task { try? await worker.run() }
        var stuck = false
        for (index, body) in bodies.enumerated() where !stuck {
            await settleDue(clock.now())
            source.deliver(body, index: index, attemptsMade: attempt - 1, lane: index < lanes.count ? lanes[index] : nil, at: clock.now())
            stuck = await !Self.untilQuiet(worker, clock, taken: index + 1)
        }
        // A message that waits without end (in doubt while its store stays down looks again every
        // second) ends the case as undecided instead of running it for ever.
        var wakes = 0
        while !stuck, (0..<bodies.count).contains(where: { source.settlement(of: $0) == nil }), let next = clock.nextDeadline {
            wakes += 1
            guard wakes <= Self.maxWakes else { break }
            await settleDue(max(next, clock.now()))
            clock.wakeEarliest()
            stuck = await !Self.untilQuiet(worker, clock, taken: bodies.count)
        }
        worker.beginShutdown()
        await running.value
        return bodies.map { body in
            guard let outcome = sink.outcome(of: body) else {
                let stuck = Decision.requeue(after: .zero, step: PipelineExecutor.runtimeStepName, reason: "no decision: still waiting with nothing left to wake it, or after \(Self.maxWakes) wake-ups", pause: nil)
                return MessageResult(decision: stuck, waits: [], outcome: Outcome(decision: stuck, message: Message(body: body), sent: false))
            }
            return MessageResult(decision: outcome.decision, waits: outcome.waits, outcome: outcome)
        }
    }

    /// The most times a case's clock moves to wake a sleeper (far more than any case needs).
    static let maxWakes = 20_000

    /// Waits (in real time) until the worker has taken `taken` messages and every one it still
    /// has sleeps on the clock (and, while consumption is paused, the task that ends the pause);
    /// false when that does not happen within 10 s (a message blocked on something the clock cannot wake).
    private static func untilQuiet(_ worker: PipelineWorker, _ clock: ManualWallClock, taken: Int) async -> Bool {
        let limit = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < limit {
            let messages = worker.messages
            let pauseEnd = worker.pauseEndSleeps ? 1 : 0
            if messages.taken >= taken, messages.active + pauseEnd == clock.sleepers { return true }
            await Task.yield()
            try? await Task.sleep(for: .microseconds(200))
        }
        return false
    }
}
