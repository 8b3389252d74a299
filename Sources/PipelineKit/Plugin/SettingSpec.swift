/// The type of one plugin setting; drives validation, defaults, `plan` and the JSON Schema.
public indirect enum SettingType: Sendable {
    case string
    /// A whole number, optionally bounded.
    case integer(ClosedRange<Int>? = nil)
    case boolean
    /// `250ms`, `30s`, `5m`, `24h` or bare seconds.
    case duration
    /// A list of durations.
    case durationList
    /// One of the listed words.
    case choice([String])
    /// A list of the listed words (each at most once).
    case choiceList([String])
    /// A list of strings (a single string counts as a list of one; a comma-separated string does not split).
    case stringList
    /// A key pattern with `{field}` placeholders (see `KeyTemplate`).
    case keyTemplate
    /// The name of an entry under `resources:` whose `uses` is the given plugin.
    case resource(uses: String)
    /// The name of an earlier step whose `uses` is the given plugin.
    case step(uses: String)
    /// A URL, or a list of URLs tried in turn (a comma-separated string counts as a list).
    case urlList
    /// `host:port`, or a list of them (a comma-separated string counts as a list).
    case addressList
    /// A fraction: a number above 0 and at most 1.
    case fraction
    /// A nested map with its own settings.
    case object(SettingsSchema)
    /// A list of nested maps, each with the same settings.
    case objectList(SettingsSchema)
    /// A map from names the user chooses (checked by `keys`) to values of one type.
    case map(keys: MapKeys, values: SettingType)

    /// A short name for messages and docs.
    public var displayName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .boolean: "boolean"
        case .duration: "duration"
        case .durationList: "list of durations"
        case .choice(let options): options.joined(separator: " | ")
        case .choiceList(let options): "list of " + options.joined(separator: ", ")
        case .stringList: "list of strings"
        case .keyTemplate: "key template"
        case .resource(let uses): "name of a `\(uses)` resource"
        case .step(let uses): "name of a `\(uses)` step"
        case .urlList: "URL or list of URLs"
        case .addressList: "host:port or list of them"
        case .fraction: "number in (0, 1]"
        case .object: "map"
        case .objectList: "list of maps"
        case .map(let keys, let values): "map of \(keys.displayName) to \(values.displayName)"
        }
    }
}

/// What the keys of a `.map` setting may be.
public enum MapKeys: Sendable {
    /// Any name.
    case any
    /// ASCII digits only, 1–32 of them (a phone number id).
    case digits

    public var displayName: String {
        switch self {
        case .any: "names"
        case .digits: "phone number ids"
        }
    }

    /// Why `key` is not allowed, nil when it is.
    public func problem(_ key: String) -> String? {
        switch self {
        case .any:
            return nil
        case .digits:
            return key.utf8.count <= 32 && !key.isEmpty && key.utf8.allSatisfy({ (0x30...0x39).contains($0) }) ? nil : "is not a phone number id (1–32 digits 0-9)"
        }
    }
}

/// Whether and how a setting is hidden wherever configuration is printed.
public enum Secrecy: Sendable {
    case none
    /// The whole value is shown as `***`.
    case secret
    /// A URL whose password (`user:PASSWORD@host`) is shown as `***`.
    case urlPassword
}

/// One setting a plugin accepts under `with:`.
public struct SettingSpec: Sendable {
    public var name: String
    public var type: SettingType
    public var required: Bool
    public var defaultValue: SettingValue?
    public var summary: String
    public var secrecy: Secrecy
    /// An environment variable whose value, when set and not empty, stands in for `defaultValue`
    /// (SPEC 9: `events.url` defaults to `RABBITMQ_URL`); `plan --explain` names it.
    public var defaultVariable: String?

    public init(_ name: String, _ type: SettingType, required: Bool = false, default defaultValue: SettingValue? = nil, secrecy: Secrecy = .none, _ summary: String) {
        self.name = name
        self.type = type
        self.required = required
        self.defaultValue = defaultValue
        self.summary = summary
        self.secrecy = secrecy
    }
}

/// The settings a plugin (or a nested map) declares: the one list that validation,
/// defaults, `plan`, `schema` and the README's reference are made from.
public struct SettingsSchema: Sendable {
    public var settings: [SettingSpec]

    public init(_ settings: [SettingSpec]) {
        self.settings = settings
    }

    public subscript(name: String) -> SettingSpec? {
        settings.first { $0.name == name }
    }
}
