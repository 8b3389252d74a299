/// Renders a resolved pipeline as YAML (`plan`): variant merged, variables
/// substituted, defaults filled in, secrets shown as `***`; with `explain`,
/// each value carries a comment saying where it came from.
public enum PlanRenderer {
    public static func render(_ pipeline: PipelineDefinition, explain: Bool) -> String {
        var lines: [String] = []
        if explain { lines.append("# files: \(pipeline.files.joined(separator: " + "))") }
        lines.append("version: \(pipeline.version)")
        lines.append("name: \(quote(pipeline.name))")
        lines.append("source:")
        lines.append("  uses: \(pipeline.source.uses)")
        renderSettings(pipeline.source.settings, indent: "  ", explain: explain, into: &lines)
        if let port = pipeline.healthPort { lines.append("health:\n  port: \(port)") }
        if let events = pipeline.events {
            lines.append("events:")
            lines.append("  uses: \(events.uses)")
            renderEntries(events.settings.entries, indent: "  ", explain: explain, into: &lines)
        }
        lines.append("resources:")
        if pipeline.resources.isEmpty { lines[lines.count - 1] += " {}" }
        for resource in pipeline.resources {
            lines.append("  \(quote(resource.name)):")
            lines.append("    uses: \(resource.uses)")
            renderSettings(resource.settings, indent: "    ", explain: explain, into: &lines)
        }
        lines.append("steps:")
        for step in pipeline.steps {
            lines.append("  - name: \(quote(step.name))")
            lines.append("    uses: \(step.uses)")
            lines.append(annotate("    on_error: \(step.onError.rawValue)", step.onErrorOrigin, explain))
            lines.append(annotate("    degradation: \(step.degradation.rawValue)", step.degradationOrigin, explain))
            renderSettings(step.settings, indent: "    ", explain: explain, into: &lines)
        }
        return lines.joined(separator: "\n") + "\n"
    }

    private static func renderSettings(_ settings: Settings, indent: String, explain: Bool, into lines: inout [String]) {
        guard !settings.entries.isEmpty else { return }
        lines.append("\(indent)with:")
        renderEntries(settings.entries, indent: indent + "  ", explain: explain, into: &lines)
    }

    private static func renderEntries(_ entries: [ResolvedSetting], indent: String, explain: Bool, into lines: inout [String]) {
        for entry in entries {
            switch entry.value {
            case .object(let children) where children.isEmpty:
                lines.append(annotate("\(indent)\(entry.name): {}", entry.origin, explain))
            case .object(let children):
                lines.append("\(indent)\(entry.name):")
                renderEntries(children, indent: indent + "  ", explain: explain, into: &lines)
            case .list(let items):
                let rendered = items.map { displayed($0, entry.secrecy) }.joined(separator: ", ")
                lines.append(annotate("\(indent)\(entry.name): [\(rendered)]", entry.origin, explain))
            default:
                lines.append(annotate("\(indent)\(entry.name): \(displayed(entry.value, entry.secrecy))", entry.origin, explain))
            }
        }
    }

    /// The value as YAML with secrets hidden.
    static func displayed(_ value: SettingValue, _ secrecy: Secrecy) -> String {
        if case .list(let items) = value { return "[" + items.map { displayed($0, secrecy) }.joined(separator: ", ") + "]" }
        if case .object(let entries) = value {
            return "{" + entries.map { "\($0.name): \(displayed($0.value, $0.secrecy))" }.joined(separator: ", ") + "}"
        }
        guard let text = value.yamlScalar else { return "" }
        switch (secrecy, value) {
        case (.secret, _):
            return text.isEmpty ? "\"\"" : "\"***\""
        case (.urlPassword, .string(let url)):
            return quote(SettingsResolver.maskPassword(in: url))
        case (_, .string(let string)):
            return quote(string)
        default:
            return text
        }
    }

    private static func annotate(_ line: String, _ origin: ValueOrigin, _ explain: Bool) -> String {
        explain ? "\(line)  # \(origin)" : line
    }

    /// A YAML scalar for `text`: plain when that reads back as the same string, else double-quoted.
    static func quote(_ text: String) -> String {
        let reserved: Set<String> = ["", "~", "null", "true", "false", "yes", "no", "on", "off", "y", "n"]
        let plainSafe = text.unicodeScalars.allSatisfy { scalar in
            ("a"..."z").contains(scalar) || ("A"..."Z").contains(scalar) || ("0"..."9").contains(scalar) || "_-./:%@+{}$".unicodeScalars.contains(scalar)
        }
        let startsSafe = text.first.map { $0.isLetter || $0 == "_" || $0 == "/" } ?? false
        if plainSafe, startsSafe, !reserved.contains(text.lowercased()), !text.contains(": "), !text.hasPrefix("{") {
            return text
        }
        return JSONWriter.quoted(text)
    }
}
