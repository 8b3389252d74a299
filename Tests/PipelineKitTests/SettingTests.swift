import PipelineKit
import Testing
import TestSupport

/// Typed settings: declared once, validated by the same declaration, read back typed.
struct SettingTests {
    enum Mode: String, CaseIterable, Sendable { case fast, careful }

    static let ttl = Setting.duration("ttl", default: .seconds(60), "how long")
    static let mode = Setting.choice("mode", default: Mode.careful, "how")
    static let modes = Setting.choices("modes", default: [Mode.fast], "which")
    static let name = Setting.optionalString("name", default: "", "who")
    static let key = Setting.keyTemplate("key", default: "k:{internalId}", "where")
    static let words = Setting.strings("words", default: ["STOP"], "what")
    static let limits = Setting.map("limits", keys: .digits, values: .integer(1...10), "per id") { value -> Int? in
        if case .integer(let limit) = value { limit } else { nil }
    }
    static let schema = SettingsSchema(ttl, mode, modes, name, key, words, limits)

    @Test func defaultsAreReadBackWhenNothingIsWritten() throws {
        let resolved = try settings("{}", schema: Self.schema)
        #expect(resolved[Self.ttl] == .seconds(60))
        #expect(resolved[Self.mode] == .careful)
        #expect(resolved[Self.modes] == [.fast])
        #expect(resolved[Self.name] == nil)
        #expect(resolved[Self.key].description == "k:{internalId}")
        #expect(resolved[Self.words] == ["STOP"])
        #expect(resolved[Self.limits].isEmpty)
        #expect(resolved.location(of: Self.ttl) == nil)
    }

    @Test func writtenValuesAreReadBackTyped() throws {
        let yaml = """
            ttl: 5m
            mode: fast
            modes: [careful, fast]
            name: ana
            key: "x:{to}"
            words: [PARAR, SAIR]
            limits: { "42": 3 }
            """
        let resolved = try settings(yaml, schema: Self.schema)
        #expect(resolved[Self.ttl] == .seconds(300))
        #expect(resolved[Self.mode] == .fast)
        #expect(resolved[Self.modes] == [.careful, .fast])
        #expect(resolved[Self.name] == "ana")
        #expect(resolved[Self.key].fields == ["to"])
        #expect(resolved[Self.words] == ["PARAR", "SAIR"])
        #expect(resolved[Self.limits] == ["42": 3])
        #expect(resolved.location(of: Self.ttl)?.line == 1)
    }

    @Test func theDeclarationValidates() {
        #expect(throws: TestFailure.self) { try settings("mode: reckless", schema: Self.schema) }
        #expect(throws: TestFailure.self) { try settings("modes: [fast, slow]", schema: Self.schema) }
        #expect(throws: TestFailure.self) { try settings("words: [{ a: 1 }]", schema: Self.schema) }
        #expect(throws: TestFailure.self) { try settings("limits: { abc: 3 }", schema: Self.schema) }
    }

    @Test func theSchemaKeepsTheDeclaredOrderAndDefaults() {
        #expect(Self.schema.settings.map(\.name) == ["ttl", "mode", "modes", "name", "key", "words", "limits"])
        #expect(Self.schema["mode"]?.defaultValue == .string("careful"))
        #expect(Self.ttl.defaultValue == .seconds(60))
    }

    @Test func anEmptyOptionalStringIsAbsent() throws {
        #expect(try settings("name: \"\"", schema: Self.schema)[Self.name] == nil)
    }

    /// `plan` shows a number setting as YAML would; one no `Int` holds must not trap there.
    @Test func aNumberSettingReadsAsYAMLWhateverItsSize() {
        #expect(SettingValue.number(2).yamlScalar == "2")
        #expect(SettingValue.number(0.5).yamlScalar == "0.5")
        #expect(SettingValue.number(1e300).yamlScalar == "1e+300")
        #expect(SettingValue.number(.infinity).yamlScalar == "inf")
    }
}
