/// The validated `with:` settings of one plugin instance, with typed accessors.
///
/// Accessors throw `SettingsError` only when a plugin asks for a setting its schema
/// does not guarantee; after validation, declared defaults are always present.
public struct Settings: Sendable, Hashable {
    public var entries: [ResolvedSetting]

    public init(_ entries: [ResolvedSetting] = []) {
        self.entries = entries
    }

    public subscript(name: String) -> ResolvedSetting? {
        entries.first { $0.name == name }
    }

    public func value(_ name: String) throws(SettingsError) -> SettingValue {
        guard let entry = self[name] else { throw SettingsError(message: "setting `\(name)` is missing") }
        return entry.value
    }

    public func string(_ name: String) throws(SettingsError) -> String {
        guard case .string(let value) = try value(name) else { throw mismatch(name, "a string") }
        return value
    }

    public func optionalString(_ name: String) -> String? {
        guard case .string(let value)? = self[name]?.value, !value.isEmpty else { return nil }
        return value
    }

    public func integer(_ name: String) throws(SettingsError) -> Int {
        guard case .integer(let value) = try value(name) else { throw mismatch(name, "an integer") }
        return value
    }

    public func boolean(_ name: String) throws(SettingsError) -> Bool {
        guard case .boolean(let value) = try value(name) else { throw mismatch(name, "a boolean") }
        return value
    }

    public func duration(_ name: String) throws(SettingsError) -> Duration {
        guard case .duration(let value) = try value(name) else { throw mismatch(name, "a duration") }
        return value
    }

    public func durations(_ name: String) throws(SettingsError) -> [Duration] {
        guard case .list(let items) = try value(name) else { throw mismatch(name, "a list of durations") }
        return items.compactMap { if case .duration(let value) = $0 { value } else { nil } }
    }

    public func strings(_ name: String) throws(SettingsError) -> [String] {
        switch try value(name) {
        case .string(let value): return [value]
        case .list(let items): return items.compactMap { if case .string(let value) = $0 { value } else { nil } }
        default: throw mismatch(name, "a list of strings")
        }
    }

    public func object(_ name: String) throws(SettingsError) -> Settings {
        guard case .object(let entries) = try value(name) else { throw mismatch(name, "a map") }
        return Settings(entries)
    }

    /// A `.map` setting's entries (empty when absent).
    public func map(_ name: String) -> [ResolvedSetting] {
        guard case .object(let entries)? = self[name]?.value else { return [] }
        return entries
    }

    public func keyTemplate(_ name: String) throws(SettingsError) -> KeyTemplate {
        let text = try string(name)
        do {
            return try KeyTemplate(text)
        } catch {
            throw SettingsError(message: error.message)
        }
    }

    private func mismatch(_ name: String, _ expected: String) -> SettingsError {
        SettingsError(message: "setting `\(name)` is not \(expected)")
    }
}

/// A plugin asked for a setting that is absent or of another type.
public struct SettingsError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
