import PipelineKit
import Testing

@Suite struct ToolingTests {
    @Test func planShowsResolvedValuesAndHidesSecrets() throws {
        let definition = try #require(Fixtures.load(Fixtures.pipeline, environment: ["STORE_PASSWORD": "hunter2", "TTL": "60"]).definition)
        let plan = PlanRenderer.render(definition, explain: false)
        #expect(!plan.contains("hunter2"))
        #expect(!plan.contains("secret@"))
        #expect(plan.contains("password: \"***\""))
        #expect(plan.contains("url: \"amqp://guest:***@localhost:5672/%2F\""))
        #expect(plan.contains("ttl: 1m"))
        #expect(plan.contains("mode: ack"))
    }

    @Test func explainNamesEveryOrigin() throws {
        let definition = try #require(Fixtures.load(Fixtures.pipeline, environment: ["TTL": "60"]).definition)
        let plan = PlanRenderer.render(definition, explain: true)
        #expect(plan.contains("ttl: 1m  # env TTL (p.yaml:17:41)"))
        #expect(plan.contains("mode: ack  # default"))
        #expect(plan.contains("timeout: 2s  # base p.yaml:11:55"))
    }

    @Test func digestChangesWithTheConfiguration() throws {
        let first = try #require(Fixtures.load(Fixtures.pipeline, environment: ["TTL": "60"]).definition)
        let same = try #require(Fixtures.load(Fixtures.pipeline, environment: ["TTL": "60"]).definition)
        let other = try #require(Fixtures.load(Fixtures.pipeline, environment: ["TTL": "61"]).definition)
        #expect(first.digest == same.digest)
        #expect(first.digest != other.digest)
    }

    @Test func schemaDescribesEveryPluginSetting() throws {
        let schema = SchemaGenerator.schema(for: Fixtures.registry)
        let text = schema.encodedString()
        #expect(text.contains(#""$schema":"https://json-schema.org/draft/2020-12/schema""#))
        for name in ["check", "claim", "send", "finish", "store", "queue", "max_attempts", "backoff", "ttl", "mode"] {
            #expect(text.contains("\"\(name)\""), "schema lacks \(name)")
        }
        #expect(schema["additionalProperties"] == .bool(false))
    }

    @Test func referenceListsSettingsWithDefaults() {
        let markdown = ReferenceGenerator.markdown(for: Fixtures.registry)
        #expect(markdown.contains("#### step `claim`"))
        #expect(markdown.contains("| `ttl` | duration | `24h` | ttl |"))
        #expect(markdown.contains("| `retry.max_attempts` | integer | `5` |"))
        #expect(markdown.contains("(secret: printed as `***`)"))
    }

    @Test func suggestionsFindTyposOnly() {
        #expect(Suggestion.closest(to: "tll", in: ["ttl", "lease"]) == "ttl")
        #expect(Suggestion.closest(to: "dispatchh", in: ["dispatch", "transform"]) == "dispatch")
        #expect(Suggestion.closest(to: "zzzzzz", in: ["ttl", "lease"]) == nil)
    }
}
