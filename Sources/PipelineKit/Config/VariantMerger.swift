/// Merges a variant file (`NAME.ENV.yaml`) over its base pipeline.
///
/// Maps merge deeply; a scalar or list in the variant replaces the base's. The
/// top-level `steps` list merges by `name`: a variant step patches the base step
/// of that name, `remove: true` drops it, and a new name is inserted after the
/// step named by `after:` or appended.
public enum VariantMerger {
    /// Returns the merged tree and the problems found in the variant.
    public static func merge(base: ConfigNode, variant: ConfigNode) -> (ConfigNode, [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        guard base.entries != nil else { return (base, []) }
        guard let variantEntries = variant.entries else {
            return (base, [.error(at: variant.location, "a variant file must be a map, found \(variant.kindName)")])
        }
        var merged = base
        var entries = base.entries ?? []
        for entry in variantEntries {
            if entry.key == "steps" {
                let baseSteps = entries.first { $0.key == "steps" }
                let result = mergeSteps(base: baseSteps?.value, variant: entry.value, diagnostics: &diagnostics)
                upsert(&entries, ConfigEntry(key: "steps", keyLocation: baseSteps?.keyLocation ?? entry.keyLocation, value: result))
            } else if let index = entries.firstIndex(where: { $0.key == entry.key }) {
                entries[index].value = mergeValue(entries[index].value, entry.value)
            } else {
                entries.append(entry)
            }
        }
        merged.value = .mapping(entries)
        return (merged, diagnostics)
    }

    /// Deep merge of two values: maps key by key, anything else replaced.
    static func mergeValue(_ base: ConfigNode, _ patch: ConfigNode) -> ConfigNode {
        guard var entries = base.entries, let patchEntries = patch.entries else { return patch }
        for entry in patchEntries {
            if let index = entries.firstIndex(where: { $0.key == entry.key }) {
                entries[index].value = mergeValue(entries[index].value, entry.value)
            } else {
                entries.append(entry)
            }
        }
        var merged = base
        merged.value = .mapping(entries)
        return merged
    }

    private static func mergeSteps(base: ConfigNode?, variant: ConfigNode, diagnostics: inout [Diagnostic]) -> ConfigNode {
        guard let patches = variant.items else {
            diagnostics.append(.error(at: variant.location, "`steps` must be a list of steps, found \(variant.kindName)"))
            return base ?? variant
        }
        guard let base, var steps = base.items else { return variant }
        for patch in patches {
            guard let patchEntries = patch.entries else {
                diagnostics.append(.error(at: patch.location, "a step must be a map, found \(patch.kindName)"))
                continue
            }
            guard let name = patch["name"]?.scalar else {
                diagnostics.append(.error(at: patch.location, "a variant step needs a `name` naming the step it patches or adds"))
                continue
            }
            let remove: Bool
            switch patch["remove"].map({ $0.scalar?.lowercased() }) {
            case nil, "false"?: remove = false
            case "true"?: remove = true
            case .some:
                diagnostics.append(.error(at: patch["remove"]?.location ?? patch.location, "`remove` of step `\(name)` must be true or false"))
                continue
            }
            let after = patch["after"]
            let body = patchEntries.filter { $0.key != "remove" && $0.key != "after" }
            var patchBody = patch
            patchBody.value = .mapping(body)
            if let index = steps.firstIndex(where: { $0["name"]?.scalar == name }) {
                if let after, !remove {
                    diagnostics.append(.error(at: after.location, "`after:` places a new step; step `\(name)` is in the base and keeps its place (remove it and add it under another name to move it)"))
                    continue
                }
                if remove {
                    steps.remove(at: index)
                } else {
                    steps[index] = mergeValue(steps[index], patchBody)
                }
                continue
            }
            if remove {
                diagnostics.append(.error(at: patch["remove"]?.location ?? patch.location, "cannot remove step `\(name)`: the base has no step of that name"))
                continue
            }
            if let after {
                guard let anchor = after.scalar, let index = steps.firstIndex(where: { $0["name"]?.scalar == anchor }) else {
                    diagnostics.append(.error(at: after.location, "`after: \(after.scalar ?? "")` names no step of the base"))
                    continue
                }
                steps.insert(patchBody, at: index + 1)
            } else {
                steps.append(patchBody)
            }
        }
        var merged = base
        merged.value = .sequence(steps)
        return merged
    }

    private static func upsert(_ entries: inout [ConfigEntry], _ entry: ConfigEntry) {
        if let index = entries.firstIndex(where: { $0.key == entry.key }) {
            entries[index] = entry
        } else {
            entries.append(entry)
        }
    }
}
