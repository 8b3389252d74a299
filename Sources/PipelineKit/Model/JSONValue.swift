/// Any JSON value, `Sendable`; read with `init(parsing:)`, written with `JSONWriter`.
/// Object keys keep no order (output is sorted for stable bytes).
public enum JSONValue: Sendable, Hashable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// The member of an object, or nil.
    public subscript(key: String) -> JSONValue? {
        if case .object(let object) = self { return object[key] }
        return nil
    }

    public var stringValue: String? {
        if case .string(let value) = self { return value }
        return nil
    }

    public var objectValue: [String: JSONValue]? {
        if case .object(let value) = self { return value }
        return nil
    }

    public var arrayValue: [JSONValue]? {
        if case .array(let value) = self { return value }
        return nil
    }

    public var boolValue: Bool? {
        if case .bool(let value) = self { return value }
        return nil
    }

    public var numberValue: Double? {
        if case .number(let value) = self { return value.double }
        return nil
    }

    /// A name for the kind of value, for error messages.
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .number: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    /// Compact JSON with sorted keys.
    public func encodedBytes() -> [UInt8] {
        var writer = JSONWriter()
        writer.value(self)
        return writer.bytes
    }

    /// Compact JSON text with sorted keys.
    public func encodedString() -> String {
        String(decoding: encodedBytes(), as: UTF8.self)
    }

    /// Whether every member of `expected` is present in `self` with a matching value
    /// (objects compared as subsets, recursively; arrays element by element; numbers by value,
    /// `JSONNumber.isSameValue(as:)`).
    /// Returns nil on a match, or the path of the first difference with both values.
    public func firstDifference(from expected: JSONValue, path: String = "") -> (path: String, expected: JSONValue, actual: JSONValue?)? {
        switch (expected, self) {
        case (.object(let expectedObject), .object(let actualObject)):
            for key in expectedObject.keys.sorted() {
                let childPath = path.isEmpty ? key : "\(path).\(key)"
                guard let expectedValue = expectedObject[key] else { continue }
                guard let actualValue = actualObject[key] else { return (childPath, expectedValue, nil) }
                if let difference = actualValue.firstDifference(from: expectedValue, path: childPath) { return difference }
            }
            return nil
        case (.array(let expectedItems), .array(let actualItems)):
            guard expectedItems.count == actualItems.count else { return (path, expected, self) }
            for (index, pair) in zip(expectedItems, actualItems).enumerated() {
                if let difference = pair.1.firstDifference(from: pair.0, path: "\(path)[\(index)]") { return difference }
            }
            return nil
        case (.number(let expectedNumber), .number(let actualNumber)):
            return actualNumber.isSameValue(as: expectedNumber) ? nil : (path, expected, self)
        default:
            return expected == self ? nil : (path, expected, self)
        }
    }
}
