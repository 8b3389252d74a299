import Foundation

/// Loads a pipeline: reads the base file and its variant, merges, substitutes
/// variables, validates every part against the plugins' declarations and runs
/// the cross-field rules. Reports every problem at once.
public struct PipelineLoader: Sendable {
    public var registry: PluginRegistry
    public var environment: [String: String]

    public init(registry: PluginRegistry, environment: [String: String]) {
        self.registry = registry
        self.environment = environment
    }

    /// The outcome of loading: a definition when there is no error, and every diagnostic.
    public struct Result: Sendable {
        public var definition: PipelineDefinition?
        public var diagnostics: [Diagnostic]

        public init(definition: PipelineDefinition?, diagnostics: [Diagnostic]) {
            self.definition = definition
            self.diagnostics = diagnostics
        }
    }

    /// The variant file for `base` and `variant`: `outbound.yaml` + `staging` → `outbound.staging.yaml`, same folder.
    public static func variantPath(base: String, variant: String) -> String {
        let url = URL(fileURLWithPath: base)
        var name = url.lastPathComponent
        for suffix in [".yaml", ".yml"] where name.hasSuffix(suffix) {
            name = String(name.dropLast(suffix.count))
            return url.deletingLastPathComponent().appendingPathComponent("\(name).\(variant)\(suffix)").relativePathFrom(base)
        }
        return url.deletingLastPathComponent().appendingPathComponent("\(name).\(variant).yaml").relativePathFrom(base)
    }

    /// Loads `path`, merged with its `variant` when given.
    public func load(path: String, variant: String? = nil) -> Result {
        switch merge(path: path, variant: variant) {
        case .success(let (tree, files, diagnostics)): return validate(tree, files: files, diagnostics: diagnostics)
        case .failure(let error): return Result(definition: nil, diagnostics: error.diagnostics)
        }
    }

    /// Loads only the `source` of `path` (with its variant): for commands that use nothing else,
    /// so variables only the other parts name need not be set.
    public func loadSource(path: String, variant: String? = nil) -> (source: ComponentDefinition?, worker: WorkerConfiguration, diagnostics: [Diagnostic]) {
        let (node, tree, diagnostics) = section("source", path: path, variant: variant)
        guard let node, let tree else { return (nil, WorkerConfiguration(), diagnostics) }
        var all = diagnostics
        let source = readSource(ConfigNode(.mapping([ConfigEntry(key: "source", keyLocation: node.location, value: node)]), at: tree.location), &all)
        all += source.map(WorkerConfiguration.check) ?? []
        guard let source, !all.hasErrors else { return (nil, WorkerConfiguration(), all) }
        return (source, WorkerConfiguration(settings: source.settings), all)
    }

    /// Loads only the `events` of `path` (with its variant), for commands that read the events.
    /// A pipeline without the section is an error unless `optional` (then: nil and no diagnostic).
    public func loadEvents(path: String, variant: String? = nil, optional: Bool = false) -> (events: ComponentDefinition?, diagnostics: [Diagnostic]) {
        let (node, tree, diagnostics) = section("events", path: path, variant: variant, optional: optional)
        guard let node, let tree else { return (nil, diagnostics) }
        var all = diagnostics
        let events = readEvents(ConfigNode(.mapping([ConfigEntry(key: "events", keyLocation: node.location, value: node)]), at: tree.location), &all)
        return (all.hasErrors ? nil : events, all)
    }

    /// What an operator command reads of a pipeline: the source, the steps of one plugin and the resources they name.
    public struct StepsView: Sendable {
        public var source: ComponentDefinition
        public var worker: WorkerConfiguration
        public var steps: [StepDefinition]
        public var resources: [ComponentDefinition]
    }

    /// Loads the source, the steps that use `plugin` and the resources those steps name (with
    /// their variant): variables only other parts name (a token, say) need not be set. With
    /// `resources`, only the resources named by those settings of the steps are loaded.
    public func loadSteps(using plugin: String, resources followed: [String]? = nil, path: String, variant: String? = nil) -> (view: StepsView?, diagnostics: [Diagnostic]) {
        let tree: ConfigNode
        var diagnostics: [Diagnostic]
        switch merge(path: path, variant: variant) {
        case .success(let (merged, _, mergeDiagnostics)): (tree, diagnostics) = (merged, mergeDiagnostics)
        case .failure(let error): return (nil, error.diagnostics)
        }
        let interpolator = Interpolator(environment: environment)
        func interpolated(_ node: ConfigNode) -> ConfigNode {
            let (result, problems) = interpolator.interpolate(node)
            diagnostics += problems
            return result
        }
        let stepItems = (tree["steps"]?.items ?? []).filter { $0["uses"]?.scalar == plugin }.map(interpolated)
        var named: Set<String> = []
        if let schema = registry.steps[plugin]?.settings {
            for item in stepItems {
                for spec in schema.settings {
                    guard case .resource = spec.type, followed?.contains(spec.name) ?? true else { continue }
                    if let name = item["with"]?[spec.name]?.scalar ?? spec.defaultValue?.yamlScalar { named.insert(name) }
                }
            }
        }
        let resourceEntries = (tree["resources"]?.entries ?? []).filter { named.contains($0.key) }
            .map { ConfigEntry(key: $0.key, keyLocation: $0.keyLocation, value: interpolated($0.value)) }
        var entries: [ConfigEntry] = []
        if let source = tree["source"] { entries.append(ConfigEntry(key: "source", keyLocation: source.location, value: interpolated(source))) }
        entries.append(ConfigEntry(key: "resources", keyLocation: tree.location, value: ConfigNode(.mapping(resourceEntries), at: tree.location)))
        entries.append(ConfigEntry(key: "steps", keyLocation: tree.location, value: ConfigNode(.sequence(stepItems), at: tree.location)))
        let reduced = ConfigNode(.mapping(entries), at: tree.location)
        let source = readSource(reduced, &diagnostics)
        diagnostics += source.map(WorkerConfiguration.check) ?? []
        let resources = readResources(reduced, &diagnostics)
        var stepsWithErrors: Set<String> = []
        let steps = stepItems.isEmpty ? [] : readSteps(reduced, resources: resources, following: followed, &diagnostics, withErrors: &stepsWithErrors)
        guard let source, !diagnostics.hasErrors else { return (nil, diagnostics) }
        return (StepsView(source: source, worker: WorkerConfiguration(settings: source.settings), steps: steps, resources: resources), diagnostics)
    }

    /// One top-level part of the merged pipeline, its variables substituted, and the whole tree
    /// (a part that is missing: an error, unless `optional`).
    private func section(_ name: String, path: String, variant: String?, optional: Bool = false) -> (ConfigNode?, ConfigNode?, [Diagnostic]) {
        switch merge(path: path, variant: variant) {
        case .success(let (tree, _, diagnostics)):
            guard let node = tree[name] else {
                return (nil, nil, diagnostics + (optional ? [] : [.error(at: tree.location, "the pipeline has no `\(name)` section")]))
            }
            let (interpolated, interpolationDiagnostics) = Interpolator(environment: environment).interpolate(node)
            return (interpolated, tree, diagnostics + interpolationDiagnostics)
        case .failure(let error):
            return (nil, nil, error.diagnostics)
        }
    }

    /// The base file merged with its variant file, and the files read.
    private func merge(path: String, variant: String?) -> Swift.Result<(ConfigNode, [String], [Diagnostic]), PipelineConfigurationError> {
        let base: ConfigNode
        do {
            base = try YAMLDocumentReader.read(path: path)
        } catch {
            return .failure(error)
        }
        guard let variant, !variant.isEmpty else { return .success((base, [path], [])) }
        let variantFile = Self.variantPath(base: path, variant: variant)
        guard FileManager.default.fileExists(atPath: variantFile) else {
            return .failure(PipelineConfigurationError([.error(at: SourceLocation(file: variantFile, line: 1, column: 1), "variant `\(variant)` has no file (expected \(variantFile) beside \(path))")]))
        }
        do {
            let overlay = try YAMLDocumentReader.read(path: variantFile).mapOrigins { origin in
                if case .base(let location) = origin { return .variant(location) }
                return origin
            }
            let (result, mergeDiagnostics) = VariantMerger.merge(base: base, variant: overlay)
            return .success((result, [path, variantFile], mergeDiagnostics))
        } catch {
            return .failure(error)
        }
    }

    /// Validates an already merged tree (used by `load` and by tests on in-memory YAML).
    public func validate(_ root: ConfigNode, files: [String], diagnostics initial: [Diagnostic] = []) -> Result {
        var diagnostics = initial
        let (tree, interpolationDiagnostics) = Interpolator(environment: environment).interpolate(root)
        diagnostics += interpolationDiagnostics
        guard let entries = tree.entries else {
            diagnostics.append(.error(at: tree.location, "a pipeline file must be a map with `version`, `name`, `source`, `resources` and `steps`, found \(tree.kindName)"))
            return Result(definition: nil, diagnostics: diagnostics)
        }
        let topLevelKeys = ["version", "name", "source", "resources", "steps", "events", "health"]
        for entry in entries where !topLevelKeys.contains(entry.key) {
            diagnostics.append(.error(at: entry.keyLocation, "unknown key `\(entry.key)`\(Suggestion.hint(for: entry.key, in: topLevelKeys)) (known: \(topLevelKeys.joined(separator: ", ")))"))
        }
        let version = readVersion(tree, &diagnostics)
        let name = readName(tree, &diagnostics)
        let source = readSource(tree, &diagnostics)
        let resources = readResources(tree, &diagnostics)
        var stepsWithErrors: Set<String> = []
        let steps = readSteps(tree, resources: resources, &diagnostics, withErrors: &stepsWithErrors)
        let events = readEvents(tree, &diagnostics)
        let healthPort = readHealthPort(tree, &diagnostics)

        guard let source else {
            return Result(definition: nil, diagnostics: diagnostics)
        }
        var definition = PipelineDefinition(version: version, name: name, source: source, resources: resources, steps: steps,
                                            worker: WorkerConfiguration(settings: source.settings), events: events, healthPort: healthPort, files: files)
        definition.callTimeouts = resources.reduce(into: [:]) { timeouts, resource in
            if let timeout = registry.resources[resource.uses]?.callTimeout { timeouts[resource.name] = resource.settings[timeout] }
        }
        definition.inDoubt = steps.lazy.compactMap { step in
            self.registry.steps[step.uses]?.inDoubtPolicy.map { (step: step.name, policy: $0(step.settings)) }
        }.first
        // Every rule is checked, so that every problem is reported at once (SPEC 5); what a step
        // needs from earlier ones only once every step could be read (one left out — an unknown
        // `uses`, a missing name — would make each step after it "need" what it provides).
        diagnostics += WorkerConfiguration.check(source)
        diagnostics += registry.sources[source.uses]?.check?(definition) ?? []
        for resource in resources {
            diagnostics += registry.resources[resource.uses]?.check?(resource, definition) ?? []
        }
        if steps.count == tree["steps"]?.items?.count {
            diagnostics += checkDependencies(steps)
        }
        // (A step whose own settings are in error is not checked across fields: a value that did not
        // parse reads as its default, and the rule would report that default.)
        for step in steps where !stepsWithErrors.contains(step.name) {
            if let check = registry.steps[step.uses]?.check {
                diagnostics += check(step, definition)
            }
        }
        return Result(definition: diagnostics.hasErrors ? nil : definition, diagnostics: diagnostics)
    }

    /// Every value a step requires must come from an earlier step (`StepPlugin.requires`/`provides`).
    private func checkDependencies(_ steps: [StepDefinition]) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        var provided: [StepValue: String] = [:]
        for step in steps {
            guard let plugin = registry.steps[step.uses] else { continue }
            for value in plugin.requires where provided[value] == nil {
                let givers = registry.steps.values.filter { $0.provides.contains(value) }.map { "`\($0.name)`" }.sorted()
                let later = steps.drop { $0.name != step.name }.dropFirst().first { registry.steps[$0.uses]?.provides.contains(value) == true }
                let hint = later.map { " (step `\($0.name)` provides it, but comes later: move `\(step.name)` after it)" }
                    ?? (givers.isEmpty ? "" : " (add a step that provides it before this one: \(givers.joined(separator: ", ")))")
                diagnostics.append(.error(at: step.location, "step `\(step.name)` (\(step.uses)) needs `\(value)`, which no earlier step provides\(hint)"))
            }
            for value in plugin.provides where provided[value] == nil { provided[value] = step.name }
        }
        return diagnostics
    }

    private func readVersion(_ tree: ConfigNode, _ diagnostics: inout [Diagnostic]) -> Int {
        guard let node = tree["version"] else {
            diagnostics.append(.error(at: tree.location, "missing `version` (write `version: 1`)"))
            return 1
        }
        guard node.scalar == "1" else {
            diagnostics.append(.error(at: node.location, "unsupported version \(node.scalar.map { "\"\($0)\"" } ?? node.kindName); this worker reads version 1"))
            return 1
        }
        return 1
    }

    private func readName(_ tree: ConfigNode, _ diagnostics: inout [Diagnostic]) -> String {
        guard let node = tree["name"] else {
            diagnostics.append(.error(at: tree.location, "missing `name` (the pipeline's name, shown in logs and /health)"))
            return ""
        }
        guard let text = node.scalar, !text.isEmpty else {
            diagnostics.append(.error(at: node.location, "`name` must be a non-empty string, found \(node.kindName)"))
            return ""
        }
        return text
    }

    private func readUses(_ node: ConfigNode, kind: String, known: [String], _ diagnostics: inout [Diagnostic]) -> String? {
        guard let uses = node["uses"] else {
            diagnostics.append(.error(at: node.location, "\(kind) is missing `uses` (one of: \(known.sorted().joined(separator: ", ")))"))
            return nil
        }
        guard let text = uses.scalar else {
            diagnostics.append(.error(at: uses.location, "`uses` must name a plugin, found \(uses.kindName)"))
            return nil
        }
        guard known.contains(text) else {
            diagnostics.append(.error(at: uses.location, "unknown \(kind) plugin `\(text)`\(Suggestion.hint(for: text, in: known)) (known: \(known.sorted().joined(separator: ", ")))"))
            return nil
        }
        return text
    }

    private func checkKeys(_ node: ConfigNode, allowed: [String], owner: String, _ diagnostics: inout [Diagnostic]) -> Bool {
        guard let entries = node.entries else {
            diagnostics.append(.error(at: node.location, "\(owner) must be a map, found \(node.kindName)"))
            return false
        }
        for entry in entries where !allowed.contains(entry.key) {
            diagnostics.append(.error(at: entry.keyLocation, "unknown key `\(entry.key)` in \(owner)\(Suggestion.hint(for: entry.key, in: allowed)) (known: \(allowed.joined(separator: ", ")))"))
        }
        return true
    }

    private func readSource(_ tree: ConfigNode, _ diagnostics: inout [Diagnostic]) -> ComponentDefinition? {
        guard let node = tree["source"] else {
            diagnostics.append(.error(at: tree.location, "missing `source` (where messages come from, e.g. `uses: rabbitmq`)"))
            return nil
        }
        guard checkKeys(node, allowed: ["uses", "with"], owner: "`source`", &diagnostics),
              let uses = readUses(node, kind: "source", known: Array(registry.sources.keys), &diagnostics),
              let plugin = registry.sources[uses] else { return nil }
        let settings = SettingsResolver(owner: "source `\(uses)`", environment: environment).resolve(node["with"], schema: plugin.settings, at: node.location, diagnostics: &diagnostics)
        return ComponentDefinition(name: "source", uses: uses, settings: settings, location: node.location)
    }

    /// `events:` — the sink's settings, with `uses:` naming the sink when more than one is known.
    private func readEvents(_ tree: ConfigNode, _ diagnostics: inout [Diagnostic]) -> ComponentDefinition? {
        guard let node = tree["events"] else { return nil }
        guard let entries = node.entries else {
            diagnostics.append(.error(at: node.location, "`events` must be a map of the sink's settings, found \(node.kindName)"))
            return nil
        }
        let known = registry.sinks.keys.sorted()
        let uses: String?
        if node["uses"] != nil {
            uses = readUses(node, kind: "events sink", known: known, &diagnostics)
        } else if known.count == 1 {
            uses = known[0]
        } else {
            diagnostics.append(.error(at: node.location, "`events` needs `uses` (one of: \(known.joined(separator: ", ")))"))
            uses = nil
        }
        guard let uses, let plugin = registry.sinks[uses] else { return nil }
        let settingsNode = ConfigNode(.mapping(entries.filter { $0.key != "uses" }), at: node.location, origin: node.origin)
        let settings = SettingsResolver(owner: "`events` (\(uses))", environment: environment).resolve(settingsNode, schema: plugin.settings, at: node.location, diagnostics: &diagnostics)
        return ComponentDefinition(name: "events", uses: uses, settings: settings, location: node.location)
    }

    /// `health: { port: … }` — where `/health`, `/ready` and `/metrics` listen for this pipeline.
    private func readHealthPort(_ tree: ConfigNode, _ diagnostics: inout [Diagnostic]) -> Int? {
        guard let node = tree["health"] else { return nil }
        guard checkKeys(node, allowed: ["port"], owner: "`health`", &diagnostics), let port = node["port"] else { return nil }
        guard let text = port.scalar, let value = Int(text.trimmingWhitespace()), (1...65535).contains(value) else {
            diagnostics.append(.error(at: port.location, "`health.port` must be a port number (1–65535), found \(port.scalar.map { "\"\($0)\"" } ?? port.kindName)"))
            return nil
        }
        return value
    }

    private func readResources(_ tree: ConfigNode, _ diagnostics: inout [Diagnostic]) -> [ComponentDefinition] {
        guard let node = tree["resources"] else { return [] }
        if case .null = node.value { return [] }
        guard let entries = node.entries else {
            diagnostics.append(.error(at: node.location, "`resources` must be a map of names to resources, found \(node.kindName)"))
            return []
        }
        var resources: [ComponentDefinition] = []
        for entry in entries {
            let owner = "resource `\(entry.key)`"
            guard checkKeys(entry.value, allowed: ["uses", "with"], owner: owner, &diagnostics),
                  let uses = readUses(entry.value, kind: "resource", known: Array(registry.resources.keys), &diagnostics),
                  let plugin = registry.resources[uses] else { continue }
            let settings = SettingsResolver(owner: "\(owner) (\(uses))", environment: environment).resolve(entry.value["with"], schema: plugin.settings, at: entry.value.location, diagnostics: &diagnostics)
            resources.append(ComponentDefinition(name: entry.key, uses: uses, settings: settings, location: entry.value.location))
        }
        // A resource named by another must exist when it is written; a default that names none means none.
        for resource in resources {
            guard let schema = registry.resources[resource.uses]?.settings else { continue }
            for setting in resource.settings.entries where setting.origin != .pluginDefault {
                guard case .resource(let uses)? = schema[setting.name]?.type, case .string(let value) = setting.value else { continue }
                let candidates = resources.filter { $0.uses == uses }.map(\.name)
                if !candidates.contains(value) {
                    let hint = candidates.isEmpty ? " (declare one under `resources:` with `uses: \(uses)`)" : Suggestion.hint(for: value, in: candidates) + " (known: \(candidates.joined(separator: ", ")))"
                    diagnostics.append(.error(at: setting.location, "`\(setting.name)` of resource `\(resource.name)`: no `\(uses)` resource named `\(value)`\(hint)"))
                }
            }
        }
        return resources
    }

    /// `following`: only these resource settings name loaded resources (the others are not checked).
    /// The steps of `tree`; `withErrors` gets the names of those whose own settings or policies are in error.
    private func readSteps(_ tree: ConfigNode, resources: [ComponentDefinition], following: [String]? = nil, _ diagnostics: inout [Diagnostic],
                           withErrors: inout Set<String>) -> [StepDefinition] {
        guard let node = tree["steps"] else {
            diagnostics.append(.error(at: tree.location, "missing `steps` (the list of steps each message goes through)"))
            return []
        }
        guard let items = node.items, !items.isEmpty else {
            diagnostics.append(.error(at: node.location, "`steps` must be a non-empty list of steps, found \(node.kindName)"))
            return []
        }
        var steps: [StepDefinition] = []
        var seen: [String: SourceLocation] = [:]
        var knownFields: Set<String> = []
        var optionalFields: Set<String> = []
        var anyFieldGuarantee = false
        for item in items {
            guard checkKeys(item, allowed: ["name", "uses", "with", "on_error", "degradation"], owner: "a step", &diagnostics) else { continue }
            guard let nameNode = item["name"], let name = nameNode.scalar, !name.isEmpty else {
                diagnostics.append(.error(at: item.location, "a step needs a `name`"))
                continue
            }
            if let first = seen[name] {
                diagnostics.append(.error(at: nameNode.location, "duplicate step name `\(name)` (first at \(first.line):\(first.column))"))
                continue
            }
            if name == PipelineExecutor.runtimeStepName {
                diagnostics.append(.error(at: nameNode.location, "step name `\(name)` is the runtime's own (metrics, logs and dead letters name its decisions so): choose another"))
                continue
            }
            seen[name] = nameNode.location
            guard let uses = readUses(item, kind: "step", known: Array(registry.steps.keys), &diagnostics), let plugin = registry.steps[uses] else { continue }
            let owner = "step `\(name)` (\(uses))"
            let errorsBefore = diagnostics.count(where: { $0.severity == .error })
            defer { if diagnostics.count(where: { $0.severity == .error }) > errorsBefore { withErrors.insert(name) } }
            let settings = SettingsResolver(owner: owner, environment: environment).resolve(item["with"], schema: plugin.settings, at: item.location, diagnostics: &diagnostics)
            let onError = readPolicy(item["on_error"], default: plugin.defaultOnError, owner: owner, &diagnostics)
            let degradation = readPolicy(item["degradation"], default: plugin.defaultDegradation, owner: owner, &diagnostics)
            if plugin.irreversible, degradation.0 == .failOpen {
                // Skipping it would report the message done (sent, marked completed, acknowledged) with nothing done.
                diagnostics.append(.error(at: item["degradation"]?.location ?? item.location,
                                          "\(owner) cannot `fail_open`: it is irreversible, and skipping it would report the message done with nothing done; use `fail_closed`"))
            }
            checkReferences(settings, schema: plugin.settings, owner: owner, resources: resources, following: following, earlierSteps: steps,
                            knownFields: anyFieldGuarantee ? (knownFields, optionalFields.subtracting(knownFields)) : nil, &diagnostics)
            steps.append(StepDefinition(name: name, uses: uses, settings: settings, onError: onError.0, degradation: degradation.0,
                                        onErrorOrigin: onError.1, degradationOrigin: degradation.1, location: item.location))
            if !plugin.guaranteedFields.isEmpty {
                anyFieldGuarantee = true
                knownFields.formUnion(plugin.guaranteedFields)
            }
            optionalFields.formUnion(plugin.optionalFields)
        }
        return steps
    }

    private func readPolicy<P: RawRepresentable & CaseIterable>(_ node: ConfigNode?, default defaultValue: P, owner: String, _ diagnostics: inout [Diagnostic]) -> (P, ValueOrigin) where P.RawValue == String {
        guard let node else { return (defaultValue, .pluginDefault) }
        let options = P.allCases.map(\.rawValue)
        guard let text = node.scalar, let policy = P(rawValue: text) else {
            diagnostics.append(.error(at: node.location, "\(owner): \(node.scalar.map { "\"\($0)\"" } ?? node.kindName) is not one of \(options.joined(separator: ", "))\(Suggestion.hint(for: node.scalar ?? "", in: options))"))
            return (defaultValue, .pluginDefault)
        }
        return (policy, node.origin)
    }

    private func checkReferences(_ settings: Settings, schema: SettingsSchema, owner: String, resources: [ComponentDefinition], following: [String]?,
                                 earlierSteps: [StepDefinition], knownFields: (guaranteed: Set<String>, optional: Set<String>)?, _ diagnostics: inout [Diagnostic]) {
        for setting in settings.entries {
            guard let spec = schema[setting.name], case .string(let value) = setting.value else { continue }
            switch spec.type {
            case .resource(let uses) where following?.contains(setting.name) ?? true:
                let candidates = resources.filter { $0.uses == uses }.map(\.name)
                if !candidates.contains(value) {
                    let hint = candidates.isEmpty ? " (declare one under `resources:` with `uses: \(uses)`)" : Suggestion.hint(for: value, in: candidates) + " (known: \(candidates.joined(separator: ", ")))"
                    diagnostics.append(.error(at: setting.location, "`\(setting.name)` of \(owner): no `\(uses)` resource named `\(value)`\(hint)"))
                }
            case .step(let uses):
                let candidates = earlierSteps.filter { $0.uses == uses }.map(\.name)
                if !candidates.contains(value) {
                    let hint = candidates.isEmpty ? " (the pipeline needs a `\(uses)` step before this one)" : Suggestion.hint(for: value, in: candidates)
                    diagnostics.append(.error(at: setting.location ?? earlierSteps.last?.location, "`\(setting.name)` of \(owner): no earlier `\(uses)` step named `\(value)`\(hint)"))
                }
            case .keyTemplate:
                guard let knownFields, let template = try? KeyTemplate(value) else { continue }
                let all = knownFields.guaranteed.union(knownFields.optional)
                for field in template.fields where !knownFields.guaranteed.contains(field) {
                    if knownFields.optional.contains(field) {
                        diagnostics.append(.warning(at: setting.location, "`\(setting.name)` of \(owner): `{\(field)}` is optional: a message without it cannot be keyed and is dead-lettered as invalid, and a step that finds keys by `internalId` alone (the statuses pipeline's) cannot find this one"))
                    } else {
                        diagnostics.append(.error(at: setting.location, "`\(setting.name)` of \(owner): unknown message field `{\(field)}`\(Suggestion.hint(for: field, in: all)) (top-level string fields: \(all.sorted().joined(separator: ", ")))"))
                    }
                }
            default:
                continue
            }
        }
    }
}

extension URL {
    /// Keeps a relative base path relative: `pipelines/outbound.yaml` → `pipelines/outbound.staging.yaml`.
    fileprivate func relativePathFrom(_ base: String) -> String {
        if base.hasPrefix("/") { return path }
        let cwd = FileManager.default.currentDirectoryPath
        let full = path
        return full.hasPrefix(cwd + "/") ? String(full.dropFirst(cwd.count + 1)) : full
    }
}
