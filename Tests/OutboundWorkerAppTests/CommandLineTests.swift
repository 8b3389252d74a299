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

    /// Audit of the operator commands: `events` with the broker unreachable exited 1 (the input's
    /// fault) where SPEC 2 says 3; `events --count 0` printed one event; `test --output` without
    /// `--format junit` wrote nothing and said nothing. Both are usage errors now (exit 2).
    @Test func operatorCommandsExitAsSPEC2Says() throws {
        let events = try worker(["events"], Self.token.merging(["RABBITMQ_URL": "amqp://guest:guest@127.0.0.1:\(freePort())/%2F"]) { $1 })
        #expect(events.status == 3, "\(events.output)")
        #expect(events.output.contains("events: cannot bind a queue to"), "\(events.output)")
        let none = try worker(["events", "--count", "0"])
        #expect(none.status == 2 && none.output.contains("--count must be 1 or more"), "\(none.output)")
        let output = try worker(["test", "--output", FileManager.default.temporaryDirectory.appendingPathComponent("r-\(UUID().uuidString).xml").path])
        #expect(output.status == 2 && output.output.contains("give --format junit"), "\(output.output)")
    }

    /// A pipeline without what `optout` reads is an invalid configuration (exit 1, SPEC 2): it exited
    /// 2 with the command's usage. And `limits` with Redis down said opt-out lists were unavailable.
    @Test func operatorCommandsNameWhatIsMissingOrUnavailable() throws {
        let limits = try worker(["limits"], Self.token.merging(["REDIS_HOST": "127.0.0.1", "REDIS_PORT": String(freePort())]) { $1 })
        #expect(limits.status == 3, "\(limits.output)")
        #expect(limits.output.contains("limits unavailable: "), "\(limits.output)")
        let noSuppress = try temporaryPipeline { yaml in
            yaml.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("  - name: suppress") && !$0.hasPrefix("    uses: suppress")
                && !$0.hasPrefix("    with: { store: redis, client: whatsapp, categories") && !$0.hasPrefix("    degradation: fail_closed  # Redis down: marketing") }
                .joined(separator: "\n")
        }
        let optout = try worker(["optout", "list", "--pipeline", noSuppress])
        #expect(optout.status == 1, "\(optout.output)")
        #expect(optout.output.contains("error: the pipeline has no `suppress` step"), "\(optout.output)")
    }

    /// A statuses pipeline without `events:` answered every POST 200 and recorded its statuses as
    /// published, none published: Meta's retries, after the fix, were deduplicated against them (audit).
    @Test func stepsThatPrepareEventsNeedTheEventsSection() throws {
        let original = try String(contentsOf: TestServices.repository.appendingPathComponent("pipelines/statuses.yaml"), encoding: .utf8)
        var lines = original.components(separatedBy: "\n")
        let start = try #require(lines.firstIndex(of: "events:"))
        let end = try #require(lines[(start + 1)...].firstIndex { !$0.hasPrefix(" ") })
        lines.removeSubrange(start..<end)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("s-\(UUID().uuidString).yaml").path
        try lines.joined(separator: "\n").write(toFile: path, atomically: true, encoding: .utf8)
        let result = try worker(["check", "--pipeline", path], Self.token.merging(["WHATSAPP_APP_SECRET": "s", "WHATSAPP_VERIFY_TOKEN": "v"]) { $1 })
        #expect(result.status == 1, "\(result.output)")
        #expect(result.output.contains("step `events` prepares events and the pipeline has no `events:` section"), "\(result.output)")
        #expect(result.output.contains("warning: step `optouts` prepares events and the pipeline has no `events:` section: its changes are made"), "\(result.output)")
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
        #expect(result.output.contains("\(path):49:"), "\(result.output)")
        #expect(result.output.contains("error: unknown setting `tll` for step `idempotency` (idempotency); did you mean `ttl`?"))
    }

    @Test func unknownPluginSuggestsTheRightOne() throws {
        let path = try temporaryPipeline { $0.replacingOccurrences(of: "uses: dispatch", with: "uses: dispatchh") }
        let result = try worker(["check", "--pipeline", path])
        #expect(result.status == 1)
        #expect(result.output.contains("\(path):54:11: error: unknown step plugin `dispatchh`; did you mean `dispatch`?"), "\(result.output)")
    }

    @Test func unsetTokenIsReportedAtItsValue() throws {
        let result = try worker(["check"], ["WHATSAPP_ACCESS_TOKEN": ""])
        #expect(result.status == 1)
        // `${WHATSAPP_ACCESS_TOKEN}` with an empty value is set-but-empty: the resource then has no token at all.
        #expect(result.output.contains("pipelines/outbound.yaml:37:185: error: resource `whatsapp` (whatsapp_cloud_api) needs `access_token` or `access_tokens`"), "\(result.output)")
    }

    /// The sender's id goes into the request's path: the number itself (a common mix-up) or a value
    /// with a space passed `check`, and every message without its own phoneNumberId was refused by
    /// the Cloud API (code 100, permanent: dead-lettered) or reported as a bad `base_url`.
    @Test(arguments: ["+15550100", "1555 0100"]) func aSenderIdThatIsNotOneIsReportedAtItsValue(_ id: String) throws {
        let result = try worker(["check"], ["WHATSAPP_PHONE_NUMBER_ID": id])
        #expect(result.status == 1)
        #expect(result.output.contains("pipelines/outbound.yaml:37:"), "\(result.output)")
        #expect(result.output.contains("error: `phone_number_id` \"\(id)\" of resource `whatsapp` is not a phone number id (1–32 digits 0-9)"), "\(result.output)")
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
        #expect(errors.count == 4, "\(result.output)")
        #expect(result.output.contains("`prefetch` of source `rabbitmq`: expected an integer, found \"many\""))
        #expect(result.output.contains("did you mean `transform`?"))
        // Rules across fields too, all at once (SPEC 5): they waited until every other problem was fixed.
        #expect(result.output.contains("lease 5s must exceed the timeout of resource `whatsapp` (10s)"))
        #expect(result.output.contains("lease 5s must exceed the source's max_park (10s)"))
        #expect(!result.output.contains("no earlier step provides"), "not what the misspelt step would have provided")
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

    /// A value that does not parse reads as its default meanwhile: the rules across fields of its
    /// step would report that default ("ttl must exceed lease 2m" beside a mistyped lease).
    @Test func aStepInErrorIsNotCheckedAcrossFieldsWithItsDefaults() throws {
        let path = try temporaryPipeline {
            $0.replacingOccurrences(of: "lease: 2m", with: "lease: soon")
                .replacingOccurrences(of: "\"${IDEMPOTENCY_TTL_SECONDS:-86400}\"", with: "60")
        }
        let result = try worker(["check", "--pipeline", path])
        #expect(result.status == 1)
        #expect(result.output.contains("soon"), "the mistyped lease is reported: \(result.output)")
        #expect(!result.output.contains("must exceed lease"), "not a rule about the default it read as: \(result.output)")
    }

    private func variant(_ yaml: String) throws -> (base: String, name: String) {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("v-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let original = try String(contentsOf: TestServices.repository.appendingPathComponent("pipelines/outbound.yaml"), encoding: .utf8)
        try original.write(to: folder.appendingPathComponent("outbound.yaml"), atomically: true, encoding: .utf8)
        try yaml.write(to: folder.appendingPathComponent("outbound.broken.yaml"), atomically: true, encoding: .utf8)
        return (folder.appendingPathComponent("outbound.yaml").path, folder.appendingPathComponent("outbound.broken.yaml").path)
    }

    @Test func aVariantWithoutTransformIsAnErrorAtTheStepThatNeedsIt() throws {
        let (base, variantFile) = try variant("steps:\n  - name: transform\n    remove: true\n")
        let result = try worker(["check", "--pipeline", base, "--env", "broken"])
        #expect(result.status == 1)
        #expect(result.output.contains("\(base):53:5: error: step `dispatch` (dispatch) needs `request`, which no earlier step provides (add a step that provides it before this one: `transform`)"), "\(result.output)")
        _ = variantFile
    }

    @Test func markCompletedBeforeDispatchIsAnErrorAtItsLine() throws {
        let (base, variantFile) = try variant("steps:\n  - name: mark_completed\n    remove: true\n  - name: mark_early\n    uses: mark_completed\n    after: idempotency\n")
        let result = try worker(["check", "--pipeline", base, "--env", "broken"])
        #expect(result.status == 1)
        #expect(result.output.contains("\(variantFile):4:5: error: step `mark_early` (mark_completed) needs `receipt`, which no earlier step provides (step `dispatch` provides it, but comes later: move `mark_early` after it)"), "\(result.output)")
    }

    /// A heartbeat beyond AMQP's 16 bits of seconds passed `check` and trapped connecting; a
    /// duration past 100 years trapped reading the pipeline. Both are errors at their lines now.
    @Test func durationsBeyondWhatTheyCanBeAreErrorsAtTheirLines() throws {
        let (base, variantFile) = try variant("source:\n  with:\n    heartbeat: 600000h\n    max_age: 1e17\n")
        let result = try worker(["check", "--pipeline", base, "--env", "broken"])
        #expect(result.status == 1)
        #expect(result.output.contains("\(variantFile):3:16: error: `heartbeat` of source `rabbitmq`: at most 65535s (AMQP's limit), found 600000h"), "\(result.output)")
        #expect(result.output.contains("\(variantFile):4:14: error: `max_age` of source `rabbitmq`: \"1e17\" is not a duration"), "\(result.output)")
    }

    @Test func flowControlSettingsAreCheckedAtTheirLines() throws {
        let (base, variantFile) = try variant("""
            source:
              with:
                max_age: 0s
                heartbeat: 500ms
                pause: 0s
            resources:
              whatsapp:
                with:
                  throughput: 0
                  throughput_by_sender: { "123": 20, "abc": 10 }
                  throughput_store: cache
            """)
        let result = try worker(["check", "--pipeline", base, "--env", "broken"])
        #expect(result.status == 1)
        let output = result.output
        #expect(output.contains("\(variantFile):3:14: error: `max_age` of source `rabbitmq` must be more than 0"), "\(output)")
        #expect(output.contains("\(variantFile):4:16: error: `heartbeat` of source `rabbitmq`: AMQP heartbeats are whole seconds"), "\(output)")
        #expect(output.contains("\(variantFile):9:19: error: `throughput` of resource `whatsapp` (whatsapp_cloud_api): 0 is out of range 1…100000"), "\(output)")
        #expect(output.contains("\(variantFile):10:42: error: `throughput_by_sender` of resource `whatsapp` (whatsapp_cloud_api): key \"abc\" is not a phone number id"), "\(output)")
        #expect(output.contains("\(variantFile):11:25: error: `throughput_store` of resource `whatsapp`: no `redis` resource named `cache`"), "\(output)")
        #expect(output.contains("\(variantFile):5:12: error: `pause` of source `rabbitmq` must be more than 0"), "a pause of 0 made every sender-side hold end at once: \(output)")
    }

    @Test func aWebhookThatCannotHoldTwoOfItsLargestPostsIsAnErrorAtItsLine() throws {
        let original = try String(contentsOf: TestServices.repository.appendingPathComponent("pipelines/statuses.yaml"), encoding: .utf8)
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("s-\(UUID().uuidString).yaml").path
        try original.replacingOccurrences(of: "    max_body_bytes: 1048576\n", with: "    max_body_bytes: 1048576\n    max_pending_bytes: 1572864\n")
            .write(toFile: path, atomically: true, encoding: .utf8)
        let line = try #require(original.components(separatedBy: "\n").firstIndex { $0.hasPrefix("    max_body_bytes:") }) + 2
        let result = try worker(["check", "--pipeline", path], Self.token.merging(["WEBHOOK_VERIFY_TOKEN": "v", "WEBHOOK_APP_SECRET": "s"]) { $1 })
        #expect(result.status == 1)
        #expect(result.output.contains("\(path):\(line):24: error: `max_pending_bytes` of source `whatsapp_webhook` (1572864) must hold two of the largest POSTs (2 × `max_body_bytes` = 2097152)"), "\(result.output)")
    }

    @Test func highAvailabilityAndTLSSettingsAreCheckedAtTheirLines() throws {
        let (base, variantFile) = try variant("""
            source:
              with:
                tls: { cert_file: /etc/client.pem }
            resources:
              redis:
                with:
                  sentinels: "10.0.0.1:26379, 10.0.0.2"
              whatsapp:
                with: { ca_file: "" }
            """)
        let result = try worker(["check", "--pipeline", base, "--env", "broken"])
        #expect(result.status == 1)
        let output = result.output
        #expect(output.contains("\(variantFile):3:23: error: `tls` of source `rabbitmq`: `cert_file` and `key_file` go together"), "\(output)")
        #expect(output.contains("warning: `tls` of source `rabbitmq` applies to `amqps://` URLs only"), "\(output)")
        #expect(output.contains("\(variantFile):7:18: error: `sentinels` of resource `redis` (redis): expected host:port (e.g. 10.0.0.5:26379), found \"10.0.0.2\""), "\(output)")

        let (otherBase, named) = try variant("resources:\n  redis:\n    with: { sentinels: [\"10.0.0.1:26379\"] }\n")
        let unnamed = try worker(["check", "--pipeline", otherBase, "--env", "broken"])
        #expect(unnamed.output.contains("\(named):3:24: error: resource `redis` (redis): `sentinels` needs `master_name`"), "\(unnamed.output)")
    }

    /// hiredis reads a zero time limit as none (audit): a command would wait for good on a Redis that hangs.
    @Test func aRedisTimeLimitOfZeroIsAnError() throws {
        let (base, variantFile) = try variant("resources:\n  redis:\n    with: { command_timeout: 0s }\n")
        let result = try worker(["check", "--pipeline", base, "--env", "broken"])
        #expect(result.status == 1)
        #expect(result.output.contains("\(variantFile):3:30: error: `command_timeout` of resource `redis` (redis): at least 1ms (0 would wait for good on a Redis that hangs), found 0s"), "\(result.output)")
    }

    @Test func aDrainShorterThanASendIsAWarning() throws {
        let (base, variantFile) = try variant("source:\n  with:\n    drain_timeout: 5s\n")
        let result = try worker(["check", "--pipeline", base, "--env", "broken"])
        #expect(result.status == 0, "a warning only")
        #expect(result.output.contains("\(variantFile):3:20: warning: `drain_timeout` (5s) does not exceed the timeout of resource `whatsapp` (10s)"), "\(result.output)")
    }

    /// SPEC 9: `events.exchange` defaults to `${OUTBOUND_EVENTS_EXCHANGE:-whatsapp.outbound.events}` and
    /// `events.url` to `RABBITMQ_URL`, also in a pipeline that does not write them.
    @Test func theEventsDefaultsComeFromTheEnvironment() throws {
        let pipeline = try temporaryPipeline { text in
            text.split(separator: "\n", omittingEmptySubsequences: false)
                .filter { !$0.hasPrefix("  url: ${RABBITMQ_URL") && !$0.hasPrefix("  exchange: ${OUTBOUND_EVENTS_EXCHANGE") }
                .joined(separator: "\n")
        }
        let set = try worker(["plan", "--pipeline", pipeline, "--explain"],
                             ["WHATSAPP_ACCESS_TOKEN": "t", "RABBITMQ_URL": "amqp://app:hunter2@mq2:5672/%2F", "OUTBOUND_EVENTS_EXCHANGE": "tenant.events"])
        #expect(set.status == 0, "\(set.output)")
        let events = set.output.components(separatedBy: "\nevents:").last ?? ""
        #expect(events.contains("exchange: tenant.events  # env OUTBOUND_EVENTS_EXCHANGE"), "\(set.output)")
        #expect(events.contains("url: \"amqp://app:***@mq2:5672/%2F\"  # env RABBITMQ_URL"), "\(set.output)")
        #expect(!set.output.contains("hunter2"))
        let unset = try worker(["plan", "--pipeline", pipeline, "--explain"], ["WHATSAPP_ACCESS_TOKEN": "t", "OUTBOUND_EVENTS_EXCHANGE": ""])
        #expect(unset.status == 0, "\(unset.output)")
        #expect((unset.output.components(separatedBy: "\nevents:").last ?? "").contains("exchange: whatsapp.outbound.events  # default"), "\(unset.output)")
        let wrong = try worker(["check", "--pipeline", pipeline], ["WHATSAPP_ACCESS_TOKEN": "t", "RABBITMQ_URL": "localhost:5672"])
        #expect(wrong.status == 1 && wrong.output.contains("(from $RABBITMQ_URL, the default of `url`)"), "a wrong value names its variable: \(wrong.output)")
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
        #expect(result.output.contains("queue: whatsapp.outbound  # base pipelines/outbound.yaml:11:12"))
    }

    @Test func usageErrorsExitTwo() throws {
        #expect(try worker(["frobnicate"]).status == 2)
        #expect(try worker(["check", "--no-such-flag"]).status == 2)
        let bare = try worker([])
        #expect(bare.status == 2, "no command is a usage error: \(bare.output)")
        #expect(bare.output.contains("SUBCOMMANDS"), "with the usage")
        #expect(try worker(["--help"]).status == 0)
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
        let files = ["outbound.yaml", "outbound.local.yaml", "outbound.staging.yaml", "outbound.prod.yaml", "statuses.yaml"].map { "pipelines/\($0)" }
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
