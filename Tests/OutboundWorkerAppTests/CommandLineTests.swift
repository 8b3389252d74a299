import Foundation
import Testing
import TestSupport

/// The built executable's configuration commands, as a user runs them.
@Suite struct CommandLineTests {
    static let token = ["WHATSAPP_ACCESS_TOKEN": "EAAG-cli-secret"]

    private func worker(_ arguments: [String], _ environment: [String: String] = token) throws -> (status: Int32, output: String) {
        var clean = environment
        for name in ["PIPELINE_ENV", "PIPELINE_FILE", "IDEMPOTENCY_TTL_SECONDS"] where clean[name] == nil { clean[name] = "" }
        return try TestServices.run(TestServices.executable, arguments, environment: clean)
    }

    private func temporaryPipeline(_ transform: (String) -> String) throws -> String {
        let original = try String(contentsOf: TestServices.repository.appendingPathComponent("pipelines/outbound.yaml"), encoding: .utf8)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("p-\(UUID().uuidString).yaml").path
        try transform(original).write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test(arguments: ["", "local", "staging", "prod"])
    func shippedPipelinesAreValid(variant: String) throws {
        let result = try worker(["check"] + (variant.isEmpty ? [] : ["--env", variant]))
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains(": ok"))
    }

    @Test func misspeltKeyIsReportedWithPositionAndSuggestion() throws {
        let path = try temporaryPipeline { $0.replacingOccurrences(of: "lease: 2m,", with: "lease: 2m, tll: 60,") }
        let result = try worker(["check", "--pipeline", path])
        #expect(result.status == 1)
        #expect(result.output.contains("\(path):30:"), "\(result.output)")
        #expect(result.output.contains("error: unknown setting `tll` for step `idempotency` (idempotency); did you mean `ttl`?"))
    }

    @Test func unknownPluginSuggestsTheRightOne() throws {
        let path = try temporaryPipeline { $0.replacingOccurrences(of: "uses: dispatch", with: "uses: dispatchh") }
        let result = try worker(["check", "--pipeline", path])
        #expect(result.status == 1)
        #expect(result.output.contains("\(path):35:11: error: unknown step plugin `dispatchh`; did you mean `dispatch`?"), "\(result.output)")
    }

    @Test func unsetTokenIsReportedAtItsValue() throws {
        let result = try worker(["check"], ["WHATSAPP_ACCESS_TOKEN": ""])
        #expect(result.status == 1)
        // `${WHATSAPP_ACCESS_TOKEN}` with an empty value is set-but-empty: the token setting must not be empty.
        #expect(result.output.contains("pipelines/outbound.yaml:23:185: error:"), "\(result.output)")
    }

    @Test func severalProblemsAreReportedInOneRun() throws {
        let path = try temporaryPipeline {
            $0.replacingOccurrences(of: "prefetch: 64", with: "prefetch: many")
                .replacingOccurrences(of: "uses: transform", with: "uses: transfrom")
                .replacingOccurrences(of: "lease: 2m", with: "lease: 5s")
        }
        let result = try worker(["check", "--pipeline", path])
        #expect(result.status == 1)
        let errors = result.output.split(separator: "\n").filter { $0.contains(": error: ") }
        #expect(errors.count == 2, "\(result.output)")
        #expect(result.output.contains("`prefetch` of source `rabbitmq`: expected an integer, found \"many\""))
        #expect(result.output.contains("did you mean `transform`?"))
    }

    @Test func crossFieldRulesAreChecked() throws {
        let path = try temporaryPipeline {
            $0.replacingOccurrences(of: "lease: 2m", with: "lease: 5s")
                .replacingOccurrences(of: "\"${IDEMPOTENCY_TTL_SECONDS:-86400}\"", with: "60")
                .replacingOccurrences(of: "idempotency:outbound:{internalId}", with: "idempotency:outbound:{to}")
        }
        let result = try worker(["check", "--pipeline", path])
        #expect(result.status == 1)
        #expect(result.output.contains("lease 5s must exceed the timeout of resource `whatsapp` (10s)"), "\(result.output)")
        #expect(result.output.contains("ttl 1m must exceed the sum of all backoff delays (156s)"))
        #expect(result.output.contains("warning: step `idempotency`: key \"idempotency:outbound:{to}\" has no {internalId}"))
    }

    @Test func planExplainsOriginsAndHidesTheToken() throws {
        let result = try worker(["plan", "--env", "staging", "--explain"], ["WHATSAPP_ACCESS_TOKEN": "EAAG-cli-secret", "IDEMPOTENCY_TTL_SECONDS": "7200", "RABBITMQ_URL": "amqp://app:hunter2@mq:5672/%2F"])
        #expect(result.status == 0)
        #expect(!result.output.contains("EAAG-cli-secret"))
        #expect(!result.output.contains("hunter2"))
        #expect(result.output.contains("access_token: \"***\"  # env WHATSAPP_ACCESS_TOKEN"))
        #expect(result.output.contains("url: \"amqp://app:***@mq:5672/%2F\"  # env RABBITMQ_URL"))
        #expect(result.output.contains("ttl: 2h  # env IDEMPOTENCY_TTL_SECONDS (pipelines/outbound.staging.yaml:"))
        #expect(result.output.contains("prefetch: 32  # variant pipelines/outbound.staging.yaml:5:15"))
        #expect(result.output.contains("queue_type: classic  # default"))
        #expect(result.output.contains("queue: whatsapp.outbound  # base pipelines/outbound.yaml:10:12"))
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try worker(["frobnicate"]).status == 2)
        #expect(try worker(["check", "--no-such-flag"]).status == 2)
    }

    @Test func schemaValidatesShippedPipelinesAndRejectsTypos() throws {
        let schema = try worker(["schema"])
        #expect(schema.status == 0)
        let schemaPath = FileManager.default.temporaryDirectory.appendingPathComponent("schema-\(UUID().uuidString).json").path
        try schema.output.write(toFile: schemaPath, atomically: true, encoding: .utf8)
        let typo = try temporaryPipeline { $0.replacingOccurrences(of: "prefetch: 64", with: "prefech: 64") }
        let script = """
            import json, sys, yaml, jsonschema
            schema = json.load(open(sys.argv[1]))
            jsonschema.Draft202012Validator.check_schema(schema)
            validator = jsonschema.Draft202012Validator(schema)
            for path in sys.argv[2:-1]:
                errors = list(validator.iter_errors(yaml.safe_load(open(path))))
                assert not errors, (path, [e.message for e in errors])
            errors = list(validator.iter_errors(yaml.safe_load(open(sys.argv[-1]))))
            assert any("prefech" in e.message for e in errors), [e.message for e in errors]
            print("schema ok")
            """
        let files = ["outbound.yaml", "outbound.local.yaml", "outbound.staging.yaml", "outbound.prod.yaml"].map { "pipelines/\($0)" }
        let result = try TestServices.run("/usr/bin/env", ["python3", "-c", script, schemaPath] + files + [typo])
        #expect(result.status == 0, "\(result.output)")
        #expect(result.output.contains("schema ok"))
    }

    @Test func readmeReferenceMatchesThePluginDeclarations() throws {
        let generated = try worker(["schema", "--markdown"]).output
        let readme = try String(contentsOf: TestServices.repository.appendingPathComponent("README.md"), encoding: .utf8)
        let start = try #require(readme.range(of: "<!-- reference:begin -->\n"))
        let end = try #require(readme.range(of: "<!-- reference:end -->"))
        #expect(String(readme[start.upperBound..<end.lowerBound]) == generated, "regenerate with `outbound-worker schema --markdown`")
    }
}
