/// The validated `with:` settings of one plugin instance: each value with where it came from.
/// Plugins read them through their typed declarations (`settings[declaration]`, see `Setting`);
/// after validation, declared defaults are always present.
public struct Settings: Sendable, Hashable {
    public var entries: [ResolvedSetting]

    public init(_ entries: [ResolvedSetting] = []) {
        self.entries = entries
    }

    public subscript(name: String) -> ResolvedSetting? {
        entries.first { $0.name == name }
    }
}

/// A plugin could not be built from its settings (a resource it names is missing or of another kind).
public struct SettingsError: Error, Sendable, CustomStringConvertible {
    public var message: String

    public init(message: String) {
        self.message = message
    }

    public var description: String { message }
}
