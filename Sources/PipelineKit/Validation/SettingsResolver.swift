/// Checks a `with:` map against a plugin's `SettingsSchema`: unknown keys, types,
/// required settings; fills in defaults. Every problem is reported, none stops the rest.
public struct SettingsResolver {
    /// What the settings belong to, for messages (`idempotency step \`idempotency\``).
    public var owner: String
    /// The environment the pipeline was read with: a setting's `defaultVariable` is looked up in it.
    public var environment: [String: String]

    public init(owner: String, environment: [String: String] = [:]) {
        self.owner = owner
        self.environment = environment
    }

    public func resolve(_ node: ConfigNode?, schema: SettingsSchema, at fallback: SourceLocation, diagnostics: inout [Diagnostic]) -> Settings {
        var entries: [ConfigEntry] = []
        let mapLocation = node?.location ?? fallback
        if let node {
            switch node.value {
            case .mapping(let mapping): entries = mapping
            case .null: break
            default:
                diagnostics.append(.error(at: node.location, "settings of \(owner) must be a map, found \(node.kindName)"))
            }
        }
        var resolved: [ResolvedSetting] = []
        for entry in entries {
            guard let spec = schema[entry.key] else {
                let known = schema.settings.map(\.name)
                let list = known.isEmpty ? "it takes no settings" : "known: \(known.joined(separator: ", "))"
                diagnostics.append(.error(at: entry.keyLocation, "unknown setting `\(entry.key)` for \(owner)\(Suggestion.hint(for: entry.key, in: known)) (\(list))"))
                continue
            }
            if case .null = entry.value.value, !spec.required { continue }
            if let value = coerce(entry.value, to: spec, diagnostics: &diagnostics) {
                resolved.append(ResolvedSetting(name: spec.name, value: value, origin: entry.value.origin, location: entry.value.location, secrecy: spec.secrecy))
            }
        }
        for spec in schema.settings where !resolved.contains(where: { $0.name == spec.name }) {
            if entries.contains(where: { $0.key == spec.name && !isNull($0.value) }) { continue }
            if let variable = spec.defaultVariable, let text = environment[variable], !text.isEmpty {
                // As if written `${VARIABLE}` in the `with:` map: checked like a written value.
                let node = ConfigNode(.scalar(text, quoted: true), at: mapLocation, origin: .environment(variable: variable, mapLocation))
                var problems: [Diagnostic] = []
                let value = coerce(node, to: spec, diagnostics: &problems)
                // Nothing at this place names the variable: the message does.
                diagnostics += problems.map { Diagnostic($0.severity, at: $0.location, "\($0.message) (from $\(variable), the default of `\(spec.name)`)") }
                if let value {
                    resolved.append(ResolvedSetting(name: spec.name, value: value, origin: node.origin, location: nil, secrecy: spec.secrecy))
                }
            } else if let defaultValue = spec.defaultValue {
                resolved.append(ResolvedSetting(name: spec.name, value: defaultValue, origin: .pluginDefault, location: nil, secrecy: spec.secrecy))
            } else if case .object(let nested) = spec.type {
                let settings = SettingsResolver(owner: "`\(spec.name)` of \(owner)", environment: environment).resolve(nil, schema: nested, at: mapLocation, diagnostics: &diagnostics)
                resolved.append(ResolvedSetting(name: spec.name, value: .object(settings.entries), origin: .pluginDefault, location: nil, secrecy: spec.secrecy))
            } else if spec.required {
                diagnostics.append(.error(at: mapLocation, "\(owner) is missing the required setting `\(spec.name)` (\(spec.summary))"))
            }
        }
        let order = Dictionary(uniqueKeysWithValues: schema.settings.enumerated().map { ($1.name, $0) })
        resolved.sort { (order[$0.name] ?? 0) < (order[$1.name] ?? 0) }
        return Settings(resolved)
    }

    private func isNull(_ node: ConfigNode) -> Bool {
        if case .null = node.value { return true }
        return false
    }

    private func coerce(_ node: ConfigNode, to spec: SettingSpec, diagnostics: inout [Diagnostic]) -> SettingValue? {
        func fail(_ message: String) -> SettingValue? {
            diagnostics.append(.error(at: node.location, "`\(spec.name)` of \(owner): \(message)"))
            return nil
        }
        let text = node.scalar
        switch spec.type {
        case .string, .resource, .step:
            guard let text else { return fail("expected \(spec.type.displayName), found \(node.kindName)") }
            if spec.required, text.isEmpty { return fail("must not be empty (\(spec.summary))") }
            return .string(text)
        case .integer(let range):
            guard let text else { return fail("expected an integer, found \(node.kindName)") }
            guard let value = Int(text.trimmingWhitespace()) else { return fail("expected an integer, found \"\(text)\"") }
            if let range, !range.contains(value) { return fail("\(value) is out of range \(range.lowerBound)…\(range.upperBound)") }
            return .integer(value)
        case .boolean:
            switch text?.lowercased() {
            case "true": return .boolean(true)
            case "false": return .boolean(false)
            default: return fail("expected true or false, found \(text.map { "\"\($0)\"" } ?? node.kindName)")
            }
        case .duration:
            guard let text else { return fail("expected a duration, found \(node.kindName)") }
            guard let duration = DurationParser.parse(text) else {
                return fail("\"\(text)\" is not a duration (write seconds, or 250ms, 30s, 5m, 24h; at most 100 years)")
            }
            return .duration(duration)
        case .durationList:
            guard let items = node.items, !items.isEmpty else { return fail("expected a non-empty list of durations, found \(node.kindName)") }
            var durations: [SettingValue] = []
            for item in items {
                guard let itemText = item.scalar, let duration = DurationParser.parse(itemText) else {
                    diagnostics.append(.error(at: item.location, "`\(spec.name)` of \(owner): \(item.scalar.map { "\"\($0)\"" } ?? item.kindName) is not a duration (write seconds, or 250ms, 30s, 5m, 24h; at most 100 years)"))
                    continue
                }
                durations.append(.duration(duration))
            }
            return .list(durations)
        case .choice(let options):
            guard let text else { return fail("expected one of \(options.joined(separator: ", ")), found \(node.kindName)") }
            guard options.contains(text) else {
                return fail("\"\(text)\" is not one of \(options.joined(separator: ", "))\(Suggestion.hint(for: text, in: options))")
            }
            return .string(text)
        case .choiceList(let options):
            let items = node.items ?? [node]
            var words: [SettingValue] = []
            for item in items {
                guard let word = item.scalar, options.contains(word) else {
                    diagnostics.append(.error(at: item.location, "`\(spec.name)` of \(owner): \(item.scalar.map { "\"\($0)\"" } ?? item.kindName) is not one of \(options.joined(separator: ", "))\(Suggestion.hint(for: item.scalar ?? "", in: options))"))
                    continue
                }
                if !words.contains(.string(word)) { words.append(.string(word)) }
            }
            return .list(words)
        case .stringList:
            let items = node.items ?? [node]
            var texts: [SettingValue] = []
            for item in items {
                guard let text = item.scalar else {
                    diagnostics.append(.error(at: item.location, "`\(spec.name)` of \(owner): expected a string, found \(item.kindName)"))
                    continue
                }
                texts.append(.string(text))
            }
            return .list(texts)
        case .keyTemplate:
            guard let text else { return fail("expected a key template, found \(node.kindName)") }
            do {
                _ = try KeyTemplate(text)
            } catch {
                return fail(error.message)
            }
            return .string(text)
        case .urlList:
            let texts = Self.listItems(node)
            var urls: [SettingValue] = []
            for (item, url) in texts {
                guard let url, url.contains("://") else {
                    diagnostics.append(.error(at: item.location, "`\(spec.name)` of \(owner): expected a URL such as amqp://user:password@host:5672/%2F, found \(url.map { "\"\(Self.maskPassword(in: $0))\"" } ?? item.kindName)"))
                    continue
                }
                urls.append(.string(url))
            }
            if urls.isEmpty, texts.isEmpty { return fail("give at least one URL") }
            return urls.count == 1 && node.items == nil ? urls.first : .list(urls)
        case .addressList:
            let texts = Self.listItems(node)
            var addresses: [SettingValue] = []
            for (item, address) in texts {
                guard let address, HostPort(address) != nil else {
                    diagnostics.append(.error(at: item.location, "`\(spec.name)` of \(owner): expected host:port (e.g. 10.0.0.5:26379), found \(address.map { "\"\($0)\"" } ?? item.kindName)"))
                    continue
                }
                addresses.append(.string(address))
            }
            // Empty (an unset variable's default, say) means not used.
            if addresses.isEmpty, texts.isEmpty { return spec.required ? fail("give at least one host:port") : nil }
            return .list(addresses)
        case .fraction:
            guard let text else { return fail("expected a number above 0 and at most 1, found \(node.kindName)") }
            guard let value = Double(text.trimmingWhitespace()), value > 0, value <= 1 else {
                return fail("expected a number above 0 and at most 1 (such as 0.5), found \"\(text)\"")
            }
            return .number(value)
        case .object(let schema):
            let nested = SettingsResolver(owner: "`\(spec.name)` of \(owner)", environment: environment)
            return .object(nested.resolve(node, schema: schema, at: node.location, diagnostics: &diagnostics).entries)
        case .objectList(let schema):
            guard let items = node.items else { return fail("expected a list of maps, found \(node.kindName)") }
            return .list(items.enumerated().map { index, item in
                let nested = SettingsResolver(owner: "item \(index + 1) of `\(spec.name)` of \(owner)", environment: environment)
                return .object(nested.resolve(item, schema: schema, at: item.location, diagnostics: &diagnostics).entries)
            })
        case .map(let keys, let valueType):
            if case .null = node.value { return .object([]) }
            guard let entries = node.entries else { return fail("expected a map, found \(node.kindName)") }
            var resolved: [ResolvedSetting] = []
            for entry in entries {
                if let problem = keys.problem(entry.key) {
                    diagnostics.append(.error(at: entry.keyLocation, "`\(spec.name)` of \(owner): key \(JSONWriter.quoted(entry.key)) \(problem)"))
                    continue
                }
                let member = SettingSpec(entry.key, valueType, required: true, secrecy: spec.secrecy, spec.summary)
                if let value = coerce(entry.value, to: member, diagnostics: &diagnostics) {
                    resolved.append(ResolvedSetting(name: entry.key, value: value, origin: entry.value.origin, location: entry.value.location, secrecy: spec.secrecy))
                }
            }
            return .object(resolved)
        }
    }

    /// A list's items, or a scalar's comma-separated parts (so one environment variable can hold a list),
    /// each with the node to blame.
    private static func listItems(_ node: ConfigNode) -> [(ConfigNode, String?)] {
        if let items = node.items { return items.map { ($0, $0.scalar) } }
        guard let text = node.scalar else { return [(node, nil)] }
        return text.split(separator: ",").map { String($0).trimmingWhitespace() }.filter { !$0.isEmpty }.map { (node, $0) }
    }

    /// `scheme://user:***@host…`: the password of a URL hidden.
    public static func maskPassword(in url: String) -> String {
        guard let schemeEnd = url.range(of: "://") else { return url }
        let rest = url[schemeEnd.upperBound...]
        guard let at = rest.lastIndex(of: "@") else { return url }
        let credentials = rest[..<at]
        guard let colon = credentials.firstIndex(of: ":") else { return url }
        return String(url[..<schemeEnd.upperBound]) + credentials[..<colon] + ":***" + rest[at...]
    }
}
