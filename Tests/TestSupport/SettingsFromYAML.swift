import PipelineKit

/// Validated plugin settings from a YAML snippet, as the loader would make them; throws on any problem.
public func settings(_ yaml: String, schema: SettingsSchema) throws -> Settings {
    var diagnostics: [Diagnostic] = []
    let node = try YAMLDocumentReader.parse(text: yaml, file: "settings.yaml")
    let settings = SettingsResolver(owner: "test").resolve(node, schema: schema, at: node.location, diagnostics: &diagnostics)
    guard diagnostics.isEmpty else { throw TestFailure("\(diagnostics)") }
    return settings
}
