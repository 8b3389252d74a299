/// A key pattern such as `idempotency:outbound:{internalId}`: literal text and `{field}` placeholders
/// filled from top-level string fields of the message.
public struct KeyTemplate: Sendable, Hashable, CustomStringConvertible {
    public enum Part: Sendable, Hashable {
        case literal(String)
        case field(String)
    }

    public let parts: [Part]
    public let description: String

    /// Parses `pattern`; throws a message when a brace is unbalanced or a field name is empty.
    public init(_ pattern: String) throws(KeyTemplateError) {
        var parts: [Part] = []
        var literal = ""
        var rest = Substring(pattern)
        while let open = rest.firstIndex(where: { $0 == "{" || $0 == "}" }) {
            guard rest[open] == "{" else { throw KeyTemplateError(message: "unbalanced `}` in key template \"\(pattern)\"") }
            literal += rest[..<open]
            let afterOpen = rest[rest.index(after: open)...]
            guard let close = afterOpen.firstIndex(of: "}") else {
                throw KeyTemplateError(message: "unterminated `{` in key template \"\(pattern)\"")
            }
            let name = String(afterOpen[..<close])
            guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                throw KeyTemplateError(message: "`{\(name)}` in key template \"\(pattern)\" is not a field name")
            }
            if !literal.isEmpty { parts.append(.literal(literal)) }
            literal = ""
            parts.append(.field(name))
            rest = afterOpen[afterOpen.index(after: close)...]
        }
        literal += rest
        if !literal.isEmpty { parts.append(.literal(literal)) }
        self.parts = parts
        self.description = pattern
    }

    /// A pattern of literal text only (no placeholders).
    public init(literal text: String) {
        parts = text.isEmpty ? [] : [.literal(text)]
        description = text
    }

    /// The field names used, in order.
    public var fields: [String] {
        parts.compactMap { if case .field(let name) = $0 { name } else { nil } }
    }

    /// Fills the template from `lookup`; nil when a field has no string value.
    public func render(_ lookup: (String) -> String?) -> String? {
        var key = ""
        for part in parts {
            switch part {
            case .literal(let text): key += text
            case .field(let name):
                guard let value = lookup(name) else { return nil }
                key += value
            }
        }
        return key
    }
}

/// Why a key template is malformed.
public struct KeyTemplateError: Error, Sendable {
    public var message: String
}
