extension ConfigNode {
    /// The node as JSON, with YAML's meaning of plain scalars: `true`/`false` are booleans,
    /// numbers are numbers, and quoted scalars are always strings.
    public var jsonValue: JSONValue {
        switch value {
        case .null:
            return .null
        case .scalar(let text, let quoted):
            if quoted { return .string(text) }
            switch text {
            case "true", "True", "TRUE": return .bool(true)
            case "false", "False", "FALSE": return .bool(false)
            default: break
            }
            let digits = text.hasPrefix("-") ? text.dropFirst() : Substring(text)
            if !digits.isEmpty, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }), digits.first != "0" || digits.count == 1 {
                return .number(JSONNumber(text: text))
            }
            if let number = Double(text), text.first.map({ $0.isNumber || $0 == "-" || $0 == "+" || $0 == "." }) == true {
                return .number(JSONNumber(number))
            }
            return .string(text)
        case .sequence(let items):
            return .array(items.map(\.jsonValue))
        case .mapping(let entries):
            return .object(Dictionary(entries.map { ($0.key, $0.value.jsonValue) }, uniquingKeysWith: { $1 }))
        }
    }
}
