import PipelineKit

/// The problems found in one message, each naming its field.
struct Problems: Sendable {
    private(set) var list: [String] = []

    mutating func add(_ problem: String) {
        if list.count < 20 { list.append(problem) }
    }

    /// A required string member of `object` at `path`.
    mutating func requiredString(_ object: [String: JSONValue], _ key: String, path: String? = nil) -> String? {
        let name = path ?? key
        guard let value = object[key], value != .null else {
            add("\(name): required")
            return nil
        }
        guard let text = value.stringValue else {
            add("\(name): must be a string, found \(value.kindName)")
            return nil
        }
        return text
    }

    /// An optional string member, at most `maxLength` characters (`allowsEmpty`: "" is a value).
    mutating func optionalString(_ object: [String: JSONValue], _ key: String, path: String? = nil, maxLength: Int, allowsEmpty: Bool = true) -> String? {
        let name = path ?? key
        guard let value = object[key], value != .null else { return nil }
        guard let text = value.stringValue else {
            add("\(name): must be a string, found \(value.kindName)")
            return nil
        }
        if text.isEmpty, !allowsEmpty {
            add("\(name): must not be empty")
            return nil
        }
        if text.count > maxLength {
            add("\(name): \(text.count) characters, at most \(maxLength)")
            return nil
        }
        return text
    }

    /// A required object member.
    mutating func requiredObject(_ object: [String: JSONValue], _ key: String, path: String? = nil) -> [String: JSONValue]? {
        let name = path ?? key
        guard let value = object[key], value != .null else {
            add("\(name): required")
            return nil
        }
        guard let members = value.objectValue else {
            add("\(name): must be an object, found \(value.kindName)")
            return nil
        }
        return members
    }

    /// Checks a length limit on a string that is present.
    mutating func limit(_ text: String, _ path: String, _ range: ClosedRange<Int>) {
        if !range.contains(text.count) {
            add(range.lowerBound > 0 && text.isEmpty ? "\(path): must not be empty" : "\(path): \(text.count) characters, at most \(range.upperBound)")
        }
    }
}
