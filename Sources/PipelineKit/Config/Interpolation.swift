/// Substitutes `${VAR}`, `${VAR:-default}` and `${VAR:?message}` in scalar values; `$${` is a literal `${`.
///
/// Runs on the parsed tree, value by value, so an error points at the value that
/// names the variable, and text in comments is never touched.
public struct Interpolator: Sendable {
    public var environment: [String: String]

    public init(environment: [String: String]) {
        self.environment = environment
    }

    /// Returns the tree with every scalar substituted, and the problems found.
    public func interpolate(_ node: ConfigNode) -> (ConfigNode, [Diagnostic]) {
        var diagnostics: [Diagnostic] = []
        let result = substitute(node, &diagnostics)
        return (result, diagnostics)
    }

    private func substitute(_ node: ConfigNode, _ diagnostics: inout [Diagnostic]) -> ConfigNode {
        var copy = node
        switch node.value {
        case .scalar(let text, let quoted):
            guard text.contains("$") else { return node }
            switch expand(text) {
            case .success(let expansion):
                copy.value = .scalar(expansion.text, quoted: quoted || expansion.usedVariable != nil)
                if let variable = expansion.setVariable {
                    copy.origin = .environment(variable: variable, node.location)
                }
            case .failure(let problem):
                diagnostics.append(.error(at: node.location, problem.message))
            }
        case .mapping(let entries):
            copy.value = .mapping(entries.map { ConfigEntry(key: $0.key, keyLocation: $0.keyLocation, value: substitute($0.value, &diagnostics)) })
        case .sequence(let items):
            copy.value = .sequence(items.map { substitute($0, &diagnostics) })
        case .null:
            break
        }
        return copy
    }

    /// The result of expanding one scalar.
    public struct Expansion: Sendable, Equatable {
        public var text: String
        /// The first variable referenced, set or not.
        public var usedVariable: String?
        /// The first variable whose value was taken from the environment.
        public var setVariable: String?
    }

    /// Why a scalar cannot be expanded.
    public struct Problem: Error, Sendable, Equatable {
        public var message: String

        public init(message: String) {
            self.message = message
        }
    }

    /// Expands the references in one string.
    public func expand(_ text: String) -> Result<Expansion, Problem> {
        var output = ""
        var expansion = Expansion(text: "")
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            output += rest[..<dollar]
            let afterDollar = rest[rest.index(after: dollar)...]
            if afterDollar.hasPrefix("${") {
                output += "${"
                rest = afterDollar.dropFirst(2)
                continue
            }
            guard afterDollar.hasPrefix("{") else {
                output.append("$")
                rest = afterDollar
                continue
            }
            let body = afterDollar.dropFirst()
            guard let close = body.firstIndex(of: "}") else {
                // The value is not quoted: it may be a secret written in the file (the diagnostic's position names it).
                return .failure(Problem(message: "unterminated `${` at character \(text.distance(from: text.startIndex, to: dollar) + 1) of the value (write `$${` for a literal `${`)"))
            }
            let reference = body[..<close]
            rest = body[body.index(after: close)...]
            switch resolve(reference, at: text.distance(from: text.startIndex, to: dollar) + 1) {
            case .success(let (value, name, fromEnvironment)):
                output += value
                if expansion.usedVariable == nil { expansion.usedVariable = name }
                if fromEnvironment, expansion.setVariable == nil { expansion.setVariable = name }
            case .failure(let problem):
                return .failure(problem)
            }
        }
        output += rest
        expansion.text = output
        return .success(expansion)
    }

    /// The value of `reference` (what is between `${` and `}`, at character `position` of the value).
    private func resolve(_ reference: Substring, at position: Int) -> Result<(String, String, Bool), Problem> {
        let name: Substring
        var defaultValue: Substring?
        var requiredMessage: Substring?
        if let range = reference.range(of: ":-") {
            name = reference[..<range.lowerBound]
            defaultValue = reference[range.upperBound...]
        } else if let range = reference.range(of: ":?") {
            name = reference[..<range.lowerBound]
            requiredMessage = reference[range.upperBound...]
        } else {
            name = reference
        }
        guard Self.isVariableName(name) else {
            // Not quoted: it may be part of a secret written in the file.
            return .failure(Problem(message: "the `${…}` at character \(position) of the value is not a variable reference: use ${NAME}, ${NAME:-default} or ${NAME:?message} (`$${` for a literal `${`)"))
        }
        let variable = String(name)
        let value = environment[variable]
        if let defaultValue {
            if let value, !value.isEmpty { return .success((value, variable, true)) }
            return .success((String(defaultValue), variable, false))
        }
        if let requiredMessage {
            if let value, !value.isEmpty { return .success((value, variable, true)) }
            let detail = requiredMessage.isEmpty ? "is required" : String(requiredMessage)
            return .failure(Problem(message: "environment variable \(variable) is not set: \(detail)"))
        }
        guard let value else {
            return .failure(Problem(message: "environment variable \(variable) is not set (write ${\(variable):-default} to give a default)"))
        }
        return .success((value, variable, true))
    }

    private static func isVariableName(_ name: Substring) -> Bool {
        func isLetter(_ scalar: Unicode.Scalar) -> Bool { scalar == "_" || ("A"..."Z").contains(scalar) || ("a"..."z").contains(scalar) }
        guard let first = name.unicodeScalars.first, isLetter(first) else { return false }
        return name.unicodeScalars.allSatisfy { isLetter($0) || ("0"..."9").contains($0) }
    }
}
