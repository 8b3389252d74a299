/// Generates the configuration reference (Markdown) from the plugins' declarations,
/// for the README: the same declarations drive validation, `plan` and `schema`.
public enum ReferenceGenerator {
    public static func markdown(for registry: PluginRegistry) -> String {
        var text = ""
        for plugin in registry.sources.values.sorted(by: { $0.name < $1.name }) {
            text += section("source `\(plugin.name)`", plugin.summary, plugin.settings)
        }
        for plugin in registry.sinks.values.sorted(by: { $0.name < $1.name }) {
            text += section("events sink `\(plugin.name)`", "\(plugin.summary); its settings go straight under `events:`", plugin.settings)
        }
        for plugin in registry.resources.values.sorted(by: { $0.name < $1.name }) {
            text += section("resource `\(plugin.name)`", plugin.summary, plugin.settings)
        }
        for plugin in registry.steps.values.sorted(by: { $0.name < $1.name }) {
            let policies = "Defaults: `on_error: \(plugin.defaultOnError.rawValue)`, `degradation: \(plugin.defaultDegradation.rawValue)`."
            text += section("step `\(plugin.name)`", "\(plugin.summary). \(policies)", plugin.settings)
        }
        return text
    }

    private static func section(_ title: String, _ summary: String, _ schema: SettingsSchema) -> String {
        var text = "#### \(title)\n\n\(summary)\n\n"
        guard !schema.settings.isEmpty else { return text + "No settings.\n\n" }
        text += "| setting | type | default | meaning |\n|---|---|---|---|\n"
        for row in rows(schema, prefix: "") { text += row + "\n" }
        return text + "\n"
    }

    private static func rows(_ schema: SettingsSchema, prefix: String) -> [String] {
        schema.settings.flatMap { spec -> [String] in
            let name = prefix + spec.name
            if case .object(let nested) = spec.type {
                return rows(nested, prefix: name + ".")
            }
            if case .objectList(let nested) = spec.type {
                return ["| `\(name)` | list of maps | — | \(spec.summary) |"] + rows(nested, prefix: name + "[].")
            }
            let defaultText: String
            if spec.required {
                defaultText = "required"
            } else if let value = spec.defaultValue {
                let written = "`\(PlanRenderer.displayed(value, .none).replacingOccurrences(of: "|", with: "\\|"))`"
                defaultText = spec.defaultVariable.map { "`$\($0)`, else \(written)" } ?? written
            } else {
                defaultText = "—"
            }
            let secret: String
            switch spec.secrecy {
            case .none: secret = ""
            case .secret: secret = " (secret: printed as `***`)"
            case .urlPassword: secret = " (its password is printed as `***`)"
            }
            return ["| `\(name)` | \(spec.type.displayName.replacingOccurrences(of: "|", with: "\\|")) | \(defaultText) | \(spec.summary)\(secret) |"]
        }
    }
}
