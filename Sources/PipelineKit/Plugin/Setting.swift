import Foundation

/// Anything that declares one setting of a plugin: a typed `Setting` or a bare `SettingSpec`.
public protocol SettingDeclaration: Sendable {
    var spec: SettingSpec { get }
}

extension SettingSpec: SettingDeclaration {
    public var spec: SettingSpec { self }
}

/// One setting, declared once — its name, type, default and docs — and read back typed. The
/// declaration drives validation, `plan`, `schema` and the README's reference; the plugin reads
/// the value with `settings[declaration]`, never by name:
///
/// ```swift
/// enum SuppressSettings {
///     static let store = Setting.resource("store", uses: "redis", default: "redis", "the `redis` resource holding the lists")
///     static let ttl = Setting.duration("ttl", default: .seconds(60), "how long an answer is cached")
///     static let schema = SettingsSchema(store, ttl)
/// }
/// // in `make`:
/// let store = try context.resources.get(context.settings[SuppressSettings.store], as: (any KeyValueStore).self)
/// ```
///
/// Reading never fails: settings are validated against the same declaration before a plugin
/// sees them, so a declared default or a required value is always there.
public struct Setting<Value: Sendable>: SettingDeclaration {
    public let spec: SettingSpec
    /// The value as validation left it (nil: absent) made typed.
    let decode: @Sendable (SettingValue?) -> Value

    public init(spec: SettingSpec, decode: @escaping @Sendable (SettingValue?) -> Value) {
        self.spec = spec
        self.decode = decode
    }

    /// The setting's name, for diagnostics that point at it.
    public var name: String { spec.name }

    /// The same setting, whose default is the environment variable `variable` when it is set
    /// and not empty (the declared default otherwise):
    ///
    /// ```swift
    /// static let exchange = Setting.string("exchange", default: "whatsapp.outbound.events", "…").orEnvironment("OUTBOUND_EVENTS_EXCHANGE")
    /// ```
    public func orEnvironment(_ variable: String) -> Setting {
        var spec = spec
        spec.defaultVariable = variable
        return Setting(spec: spec, decode: decode)
    }

    /// The value when it is not written: the declared default.
    public var defaultValue: Value { decode(nil) }
}

extension Settings {
    /// The typed value of a declared setting.
    public subscript<Value>(_ setting: Setting<Value>) -> Value {
        setting.decode(self[setting.spec.name]?.value)
    }

    /// Where a declared setting was written (for diagnostics), nil when it took its default.
    public func location<Value>(of setting: Setting<Value>) -> SourceLocation? {
        self[setting.spec.name]?.location
    }

    /// Whether a declared setting was written or has a default (as opposed to absent).
    public func has<Value>(_ setting: Setting<Value>) -> Bool {
        self[setting.spec.name] != nil
    }
}

extension SettingsSchema {
    /// The schema of the given declarations, in order.
    public init(_ declarations: any SettingDeclaration...) {
        self.init(declarations.map(\.spec))
    }
}

// MARK: - Declaring settings

extension Setting where Value == String {
    /// A string; `default` is used when it is not written.
    public static func string(_ name: String, default value: String, secrecy: Secrecy = .none, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .string, default: .string(value), secrecy: secrecy, summary)) { $0?.string ?? value }
    }

    /// A required string.
    public static func requiredString(_ name: String, secrecy: Secrecy = .none, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .string, required: true, secrecy: secrecy, summary)) { $0?.string ?? "" }
    }

    /// The name of a resource whose `uses` is `plugin`.
    public static func resource(_ name: String, uses plugin: String, default value: String, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .resource(uses: plugin), default: .string(value), summary)) { $0?.string ?? value }
    }

    /// The name of an earlier step whose `uses` is `plugin`.
    public static func step(_ name: String, uses plugin: String, default value: String, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .step(uses: plugin), default: .string(value), summary)) { $0?.string ?? value }
    }
}

extension Setting where Value == String? {
    /// A string that may be absent; an empty string counts as absent (`default` is shown by `plan`).
    public static func optionalString(_ name: String, default value: String? = nil, secrecy: Secrecy = .none, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .string, default: value.map(SettingValue.string), secrecy: secrecy, summary)) { $0?.string.flatMap { $0.isEmpty ? nil : $0 } }
    }

    /// The name of a resource whose `uses` is `plugin`, when one is named (empty: none).
    public static func optionalResource(_ name: String, uses plugin: String, default value: String? = nil, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .resource(uses: plugin), default: value.map(SettingValue.string), summary)) { $0?.string.flatMap { $0.isEmpty ? nil : $0 } }
    }
}

extension Setting where Value == Int {
    /// A whole number within `range`.
    public static func integer(_ name: String, _ range: ClosedRange<Int>? = nil, default value: Int, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .integer(range), default: .integer(value), summary)) {
            if case .integer(let number)? = $0 { number } else { value }
        }
    }
}

extension Setting where Value == Int? {
    /// A whole number within `range`; nil when absent.
    public static func optionalInteger(_ name: String, _ range: ClosedRange<Int>? = nil, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .integer(range), summary)) {
            if case .integer(let number)? = $0 { number } else { nil }
        }
    }
}

extension Setting where Value == Bool {
    public static func boolean(_ name: String, default value: Bool, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .boolean, default: .boolean(value), summary)) {
            if case .boolean(let flag)? = $0 { flag } else { value }
        }
    }
}

extension Setting where Value == Duration {
    /// `250ms`, `30s`, `5m`, `24h` or bare seconds.
    public static func duration(_ name: String, default value: Duration, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .duration, default: .duration(value), summary)) { $0?.duration ?? value }
    }
}

extension Setting where Value == Duration? {
    /// A duration that may be absent.
    public static func optionalDuration(_ name: String, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .duration, summary)) { $0?.duration }
    }
}

extension Setting where Value == [Duration] {
    public static func durations(_ name: String, default value: [Duration], _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .durationList, default: .list(value.map(SettingValue.duration)), summary)) {
            guard case .list(let items)? = $0 else { return value }
            return items.compactMap(\.duration)
        }
    }
}

extension Setting where Value == KeyTemplate {
    /// A key pattern with `{field}` placeholders; `default` must be a valid pattern.
    public static func keyTemplate(_ name: String, default pattern: String, _ summary: String) -> Setting {
        let fallback = (try? KeyTemplate(pattern)) ?? KeyTemplate(literal: pattern)
        return Setting(spec: SettingSpec(name, .keyTemplate, default: .string(pattern), summary)) {
            $0?.string.flatMap { try? KeyTemplate($0) } ?? fallback
        }
    }
}

extension Setting where Value == KeyTemplate? {
    /// A key pattern that may be absent.
    public static func optionalKeyTemplate(_ name: String, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .keyTemplate, summary)) { $0?.string.flatMap { try? KeyTemplate($0) } }
    }
}

extension Setting where Value == [String] {
    /// A URL or a list of URLs (a comma-separated string counts as a list).
    public static func urls(_ name: String, default value: String, secrecy: Secrecy = .none, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .urlList, default: .string(value), secrecy: secrecy, summary)) { $0?.strings ?? [value] }
    }

    /// `host:port` or a list of them; empty when absent.
    public static func addresses(_ name: String, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .addressList, summary)) { $0?.strings ?? [] }
    }

    /// A list of words from `options`, each at most once.
    public static func words(_ name: String, from options: [String], default value: [String], _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .choiceList(options), default: .list(value.map(SettingValue.string)), summary)) { $0?.strings ?? value }
    }

    /// A list of strings (a single string counts as a list of one).
    public static func strings(_ name: String, default value: [String], _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .stringList, default: .list(value.map(SettingValue.string)), summary)) { $0?.strings ?? value }
    }
}

extension Setting {
    /// A map from names (checked by `keys`) to values of `type`, each made typed by `element`
    /// (validation has checked it against `type`); empty when absent.
    public static func map<Element>(_ name: String, keys: MapKeys, values type: SettingType, secrecy: Secrecy = .none, _ summary: String,
                                    element: @escaping @Sendable (SettingValue) -> Element?) -> Setting where Value == [String: Element] {
        Setting(spec: SettingSpec(name, .map(keys: keys, values: type), secrecy: secrecy, summary)) {
            guard case .object(let entries)? = $0 else { return [:] }
            return Dictionary(entries.compactMap { entry in element(entry.value).map { (entry.name, $0) } }) { first, _ in first }
        }
    }
}

extension Setting where Value == [String: String] {
    /// A map from names (checked by `keys`) to strings; empty when absent.
    public static func stringMap(_ name: String, keys: MapKeys, secrecy: Secrecy = .none, _ summary: String) -> Setting {
        map(name, keys: keys, values: .string, secrecy: secrecy, summary) { $0.string }
    }
}

extension Setting where Value == Settings {
    /// A nested map with its own declared settings; read them from the result.
    public static func object(_ name: String, _ schema: SettingsSchema, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .object(schema), summary)) {
            if case .object(let entries)? = $0 { Settings(entries) } else { Settings() }
        }
    }
}

extension Setting where Value == [Settings] {
    /// A list of nested maps, each with its own declared settings; empty when absent.
    public static func objects(_ name: String, _ schema: SettingsSchema, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .objectList(schema), summary)) {
            guard case .list(let items)? = $0 else { return [] }
            return items.compactMap { if case .object(let entries) = $0 { Settings(entries) } else { nil } }
        }
    }
}

extension Setting where Value == Double {
    /// A fraction above 0 and at most 1.
    public static func fraction(_ name: String, default value: Double, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .fraction, default: .number(value), summary)) {
            if case .number(let number)? = $0 { number } else { value }
        }
    }
}

extension Setting where Value: RawRepresentable & CaseIterable, Value.RawValue == String {
    /// One of the cases of `Value` (their raw values are the words accepted).
    public static func choice(_ name: String, default value: Value, _ summary: String) -> Setting {
        Setting(spec: SettingSpec(name, .choice(Value.allCases.map(\.rawValue)), default: .string(value.rawValue), summary)) {
            $0?.string.flatMap(Value.init(rawValue:)) ?? value
        }
    }
}

extension Setting {

    /// A list of cases of `Choice`, each at most once.
    public static func choices<Choice>(_ name: String, default value: [Choice], _ summary: String) -> Setting
    where Value == [Choice], Choice: RawRepresentable & CaseIterable & Sendable, Choice.RawValue == String {
        Setting(spec: SettingSpec(name, .choiceList(Choice.allCases.map(\.rawValue)), default: .list(value.map { .string($0.rawValue) }), summary)) {
            $0?.strings.map { $0.compactMap(Choice.init(rawValue:)) } ?? value
        }
    }
}

extension SettingValue {
    var string: String? {
        if case .string(let value) = self { value } else { nil }
    }

    var duration: Duration? {
        if case .duration(let value) = self { value } else { nil }
    }

    /// A string or a list of strings as a list.
    var strings: [String]? {
        switch self {
        case .string(let value): [value]
        case .list(let items): items.compactMap(\.string)
        default: nil
        }
    }
}
