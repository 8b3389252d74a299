/// A validated, typed setting value.
public indirect enum SettingValue: Sendable, Hashable {
    case string(String)
    case integer(Int)
    case boolean(Bool)
    case duration(Duration)
    case number(Double)
    case list([SettingValue])
    case object([ResolvedSetting])

    /// How the value reads in YAML (`plan`), secrets not yet hidden.
    public var yamlScalar: String? {
        switch self {
        case .string(let value): value
        case .integer(let value): String(value)
        case .boolean(let value): value ? "true" : "false"
        case .duration(let value): DurationParser.format(value)
        case .number(let value): Int(exactly: value).map { String($0) } ?? String(value)
        case .list, .object: nil
        }
    }
}

/// One setting after validation: its value, where it was written and where the value came from.
public struct ResolvedSetting: Sendable, Hashable {
    public var name: String
    public var value: SettingValue
    public var origin: ValueOrigin
    public var location: SourceLocation?
    public var secrecy: Secrecy

    public init(name: String, value: SettingValue, origin: ValueOrigin, location: SourceLocation?, secrecy: Secrecy) {
        self.name = name
        self.value = value
        self.origin = origin
        self.location = location
        self.secrecy = secrecy
    }

    public static func == (lhs: ResolvedSetting, rhs: ResolvedSetting) -> Bool {
        lhs.name == rhs.name && lhs.value == rhs.value
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(value)
    }
}

extension Secrecy: Hashable {}
