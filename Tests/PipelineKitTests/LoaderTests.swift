import Foundation
import PipelineKit
import Testing

@Suite struct LoaderTests {
    private func errors(_ text: String, environment: [String: String] = [:]) -> [String] {
        Fixtures.load(text, environment: environment).diagnostics.filter { $0.severity == .error }.map(\.description)
    }

    @Test func validPipelineResolvesDefaultsAndVariables() throws {
        let result = Fixtures.load(Fixtures.pipeline, environment: ["TTL": "120"])
        let definition = try #require(result.definition)
        #expect(definition.steps.map(\.name) == ["check", "claim", "send", "finish"])
        let claim = try #require(definition.step(named: "claim"))
        #expect(claim.settings["ttl"]?.value == .duration(.seconds(120)))
        #expect(claim.settings["mode"]?.value == .string("ack"))
        #expect(claim.settings["mode"]?.origin == .pluginDefault)
        #expect(claim.settings["ttl"]?.origin == .environment(variable: "TTL", SourceLocation(file: "p.yaml", line: 17, column: 41)))
        #expect(definition.retry == RetryPolicy(maxAttempts: 3, backoff: [.seconds(1), .seconds(5)]))
        #expect(definition.step(named: "send")?.onError == .retry)
    }

    /// A command that needs one resource of a step loads only that one: the others (and the variables
    /// only they use, a token say) are neither loaded nor checked.
    @Test func loadingStepsFollowsOnlyTheResourcesAsked() throws {
        let text = Fixtures.pipeline.replacingOccurrences(of: "password: \"${STORE_PASSWORD:-}\"", with: "password: \"${STORE_PASSWORD}\"")
        let path = try Fixtures.folder(["p.yaml": text]) + "/p.yaml"
        let loader = PipelineLoader(registry: Fixtures.registry, environment: [:])
        let all = loader.loadSteps(using: "claim", path: path)
        #expect(all.view == nil, "following every resource setting needs STORE_PASSWORD")
        let none = loader.loadSteps(using: "claim", resources: [], path: path)
        #expect(none.diagnostics.filter { $0.severity == .error }.isEmpty, "\(none.diagnostics)")
        #expect(none.view?.steps.map(\.name) == ["claim"])
        #expect(none.view?.resources.isEmpty == true)
    }

    @Test func misspeltKeySuggestsTheRightOneAtItsPosition() {
        let text = Fixtures.pipeline.replacingOccurrences(of: "ttl: \"${TTL:-86400}\"", with: "tll: 60")
        let found = errors(text)
        #expect(found == ["p.yaml:17:36: error: unknown setting `tll` for step `claim` (claim); did you mean `ttl`? (known: store, key, ttl, mode, count)"])
    }

    @Test func unknownPluginSuggestsTheClosest() {
        let found = errors(Fixtures.pipeline.replacingOccurrences(of: "uses: send", with: "uses: sendd"))
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("p.yaml:19:11: error: unknown step plugin `sendd`; did you mean `send`?") == true)
    }

    @Test func unsetVariableIsReportedAtTheValue() {
        let text = Fixtures.pipeline.replacingOccurrences(of: "${STORE_PASSWORD:-}", with: "${STORE_PASSWORD}")
        let found = errors(text)
        #expect(found.count == 1)
        #expect(found.first?.hasPrefix("p.yaml:11:23: error: environment variable STORE_PASSWORD is not set") == true)
    }

    @Test func everyProblemIsReportedInOneRun() {
        let text = Fixtures.pipeline
            .replacingOccurrences(of: "max_attempts: 3", with: "max_attempts: lots")
            .replacingOccurrences(of: "timeout: 2s", with: "timeout: 2 seconds")
            .replacingOccurrences(of: "uses: check", with: "uses: chek")
            .replacingOccurrences(of: "name: test", with: "name: test\nsteeps: []")
        let found = errors(text)
        #expect(found.count == 4, "\(found)")
        #expect(found.contains { $0.contains("`max_attempts`") && $0.contains("expected an integer") })
        #expect(found.contains { $0.contains("\"2 seconds\" is not a duration") })
        #expect(found.contains { $0.contains("did you mean `check`?") })
        #expect(found.contains { $0.contains("unknown key `steeps`; did you mean `steps`?") })
    }

    @Test func typeErrorsNameTheExpectedType() {
        let found = errors(Fixtures.pipeline.replacingOccurrences(of: "with: { key: \"k:{internalId}\", ttl: \"${TTL:-86400}\" }", with: "with: { count: 11, mode: nack }"))
        #expect(found.contains { $0.contains("`count` of step `claim` (claim): 11 is out of range 1…10") })
        #expect(found.contains { $0.contains("\"nack\" is not one of ack, requeue") })
    }

    /// Before, a step named `pipeline` passed `check` and trapped building the worker (at start, or
    /// at a SIGHUP of a running one): the runtime's own decisions are counted under that name.
    @Test func aStepCannotTakeTheRuntimesName() {
        let found = errors(Fixtures.pipeline.replacingOccurrences(of: "name: send", with: "name: pipeline"))
        #expect(found.count == 1, "\(found)")
        #expect(found.first?.contains("step name `pipeline` is the runtime's own") == true, "\(found)")
    }

    @Test func duplicateStepNamesAndReferences() {
        var text = Fixtures.pipeline + "\n  - name: send\n    uses: send\n"
        text = text.replacingOccurrences(of: "store:\n    uses: store", with: "db:\n    uses: store")
        let found = errors(text)
        #expect(found.contains { $0.contains("duplicate step name `send`") })
        #expect(found.contains { $0.contains("no `store` resource named `store`") })
    }

    /// An irreversible step (a send) skipped while its store is down would leave the message marked
    /// completed and acknowledged, reported sent, with nothing sent: `fail_open` is refused there.
    @Test func anIrreversibleStepCannotFailOpen() {
        let text = Fixtures.pipeline.replacingOccurrences(of: "  - name: send\n    uses: send\n", with: "  - name: send\n    uses: send\n    degradation: fail_open\n")
        #expect(text != Fixtures.pipeline)
        let found = errors(text)
        #expect(found.contains { $0.contains("error: step `send` (send) cannot `fail_open`") }, "\(found)")
        #expect(!errors(text.replacingOccurrences(of: "degradation: fail_open", with: "degradation: fail_closed")).contains { $0.contains("fail_open") })
    }

    @Test func stepReferenceNeedsAnEarlierStep() {
        let text = Fixtures.pipeline.replacingOccurrences(of: "  - name: claim\n    uses: claim\n    with: { key: \"k:{internalId}\", ttl: \"${TTL:-86400}\" }\n", with: "")
        let found = errors(text)
        #expect(found.contains { $0.contains("no earlier `claim` step named `claim`") })
    }

    @Test func keyTemplateFieldsMustBeKnown() {
        let found = errors(Fixtures.pipeline.replacingOccurrences(of: "k:{internalId}", with: "k:{internalld}"))
        #expect(found == ["p.yaml:17:18: error: `key` of step `claim` (claim): unknown message field `{internalld}`; did you mean `internalId`? (top-level string fields: internalId, phoneNumberId, to)"])
    }

    /// SPEC 5: `{field}` takes a top-level string field of the message. An optional one of the
    /// schema (`phoneNumberId`) is one: a warning that a message without it cannot be keyed, not the
    /// "unknown field" error it was.
    @Test func anOptionalFieldOfTheSchemaIsKnownWithAWarning() {
        let result = Fixtures.load(Fixtures.pipeline.replacingOccurrences(of: "k:{internalId}", with: "k:{phoneNumberId}:{internalId}"))
        #expect(!result.diagnostics.contains { $0.severity == .error }, "\(result.diagnostics)")
        #expect(result.diagnostics.contains { $0.severity == .warning && $0.description.contains("`{phoneNumberId}` is optional: a message without it cannot be keyed") })
    }

    @Test(arguments: [
        ("", "file is empty"),
        ("version: 1\n  bad: [", "YAML syntax error"),
        ("- a\n- b\n", "must be a map"),
        ("version: 1\nname: x\nsource: [1, 2]\nsteps: []\n", "`source` must be a map"),
        ("version: 2\n", "unsupported version"),
        ("version: 1\nversion: 1\n", "duplicate keys version"),
    ])
    func badFilesGiveClearErrors(text: String, expected: String) {
        let found = errors(text)
        #expect(found.contains { $0.contains(expected) }, "\(found)")
    }

    @Test func binaryGarbageAndHugeFilesAreRefused() throws {
        let garbage = Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) })
        #expect(throws: PipelineConfigurationError.self) { try YAMLDocumentReader.parse(data: garbage, file: "g.yaml") }
        let huge = Data(repeating: UInt8(ascii: "a"), count: 10 << 20)
        do {
            _ = try YAMLDocumentReader.parse(data: huge, file: "h.yaml")
            Issue.record("a 10 MB file was accepted")
        } catch {
            #expect(error.diagnostics.first?.message.contains("at most 1048576 bytes") == true)
        }
    }

    @Test func variantsMergeDeeplyAndStepsByName() throws {
        let folder = try Fixtures.folder([
            "p.yaml": Fixtures.pipeline,
            "p.stage.yaml": """
                source:
                  with:
                    retry: { max_attempts: 4 }
                resources:
                  store:
                    with: { timeout: 3s }
                steps:
                  - name: claim
                    with: { mode: requeue }
                  - name: finish
                    remove: True
                  - name: check2
                    uses: check
                    after: check
                  - name: tail
                    uses: check
                """,
        ])
        let result = PipelineLoader(registry: Fixtures.registry, environment: [:]).load(path: folder + "/p.yaml", variant: "stage")
        let definition = try #require(result.definition, "\(result.diagnostics)")
        #expect(definition.steps.map(\.name) == ["check", "check2", "claim", "send", "tail"])
        #expect(definition.retry.maxAttempts == 4)
        #expect(definition.retry.backoff == [.seconds(1), .seconds(5)])
        #expect(definition.resource(named: "store")?.settings["timeout"]?.value == .duration(.seconds(3)))
        let claim = try #require(definition.step(named: "claim"))
        #expect(claim.settings["mode"]?.value == .string("requeue"))
        #expect(claim.settings["key"]?.value == .string("k:{internalId}"))
        if case .variant(let location)? = claim.settings["mode"]?.origin {
            #expect(location.file.hasSuffix("p.stage.yaml"))
            #expect(location.line == 9)
        } else {
            Issue.record("mode should come from the variant")
        }
    }

    @Test func variantErrorsNameTheVariantFile() throws {
        let folder = try Fixtures.folder([
            "p.yaml": Fixtures.pipeline,
            "p.bad.yaml": "steps:\n  - name: nope\n    remove: true\n  - name: x\n    uses: check\n    after: missing\n",
        ])
        let result = PipelineLoader(registry: Fixtures.registry, environment: [:]).load(path: folder + "/p.yaml", variant: "bad")
        let found = result.diagnostics.map(\.description)
        #expect(found.contains { $0.contains("p.bad.yaml:3:13: error: cannot remove step `nope`") })
        #expect(found.contains { $0.contains("p.bad.yaml:6:12: error: `after: missing` names no step") })
        let unread = try Fixtures.folder([
            "p.yaml": Fixtures.pipeline,
            "p.bad.yaml": "steps:\n  - name: finish\n    remove: yes please\n  - name: send\n    after: check\n",
        ])
        let ignored = PipelineLoader(registry: Fixtures.registry, environment: [:]).load(path: unread + "/p.yaml", variant: "bad").diagnostics.map(\.description)
        #expect(ignored.contains { $0.contains("p.bad.yaml:3:13: error: `remove` of step `finish` must be true or false") }, "\(ignored)")
        #expect(ignored.contains { $0.contains("p.bad.yaml:5:12: error: `after:` places a new step; step `send` is in the base") }, "\(ignored)")
        let missing = PipelineLoader(registry: Fixtures.registry, environment: [:]).load(path: folder + "/p.yaml", variant: "absent")
        #expect(missing.diagnostics.first?.message.contains("variant `absent` has no file") == true)
    }
}
