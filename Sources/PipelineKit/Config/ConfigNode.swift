/// Where a configuration value came from, for `plan --explain`.
public enum ValueOrigin: Sendable, Hashable, CustomStringConvertible {
    /// Written in the base pipeline file.
    case base(SourceLocation)
    /// Written in the variant file, over the base.
    case variant(SourceLocation)
    /// Taken from an environment variable through `${VAR}` at that place.
    case environment(variable: String, SourceLocation)
    /// Filled in from the plugin's declared default.
    case pluginDefault

    public var description: String {
        switch self {
        case .base(let location): "base \(location)"
        case .variant(let location): "variant \(location)"
        case .environment(let variable, let location): "env \(variable) (\(location))"
        case .pluginDefault: "default"
        }
    }
}

/// A YAML value with its position, independent of the YAML library and `Sendable`.
///
/// Pipeline files are parsed into this tree, merged, interpolated and validated;
/// every node keeps the place it was written so errors point at it.
public struct ConfigNode: Sendable {
    public indirect enum Value: Sendable {
        /// A scalar as written (`quoted` scalars never mean null, booleans or numbers to YAML).
        case scalar(String, quoted: Bool)
        case mapping([ConfigEntry])
        case sequence([ConfigNode])
        case null
    }

    public var value: Value
    public var location: SourceLocation
    public var origin: ValueOrigin

    public init(_ value: Value, at location: SourceLocation, origin: ValueOrigin? = nil) {
        self.value = value
        self.location = location
        self.origin = origin ?? .base(location)
    }

    /// The entries of a mapping, or nil.
    public var entries: [ConfigEntry]? {
        if case .mapping(let entries) = value { return entries }
        return nil
    }

    /// The items of a sequence, or nil.
    public var items: [ConfigNode]? {
        if case .sequence(let items) = value { return items }
        return nil
    }

    /// The text of a scalar, or nil.
    public var scalar: String? {
        if case .scalar(let text, _) = value { return text }
        return nil
    }

    /// The entry of a mapping with that key.
    public subscript(key: String) -> ConfigNode? {
        entries?.first { $0.key == key }?.value
    }

    /// A name for the kind of value, for error messages.
    public var kindName: String {
        switch value {
        case .scalar: "a scalar"
        case .mapping: "a map"
        case .sequence: "a list"
        case .null: "nothing (null)"
        }
    }

    /// Returns the same tree with every node's origin rewritten by `transform`.
    public func mapOrigins(_ transform: (ValueOrigin) -> ValueOrigin) -> ConfigNode {
        var copy = self
        copy.origin = transform(origin)
        switch value {
        case .mapping(let entries):
            copy.value = .mapping(entries.map { ConfigEntry(key: $0.key, keyLocation: $0.keyLocation, value: $0.value.mapOrigins(transform)) })
        case .sequence(let items):
            copy.value = .sequence(items.map { $0.mapOrigins(transform) })
        case .scalar, .null:
            break
        }
        return copy
    }
}

/// One `key: value` pair of a mapping.
public struct ConfigEntry: Sendable {
    public var key: String
    public var keyLocation: SourceLocation
    public var value: ConfigNode

    public init(key: String, keyLocation: SourceLocation, value: ConfigNode) {
        self.key = key
        self.keyLocation = keyLocation
        self.value = value
    }
}
