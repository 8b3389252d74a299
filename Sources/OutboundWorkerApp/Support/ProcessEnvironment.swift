import Foundation

/// The process environment with a `.env` file of the working directory underneath it
/// (the real environment wins).
public enum ProcessEnvironment {
    public static func load(dotEnvPath: String = ".env") -> [String: String] {
        var values = parseDotEnv(path: dotEnvPath)
        for (key, value) in ProcessInfo.processInfo.environment { values[key] = value }
        return values
    }

    /// `KEY=value` lines; `#` comments, `export ` prefixes and single or double quotes are understood.
    public static func parseDotEnv(path: String) -> [String: String] {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return [:] }
        var values: [String: String] = [:]
        for rawLine in text.split(whereSeparator: \.isNewline) {
            var line = rawLine.trimmingCharacters(in: .whitespaces)
            if line.hasPrefix("export ") { line = String(line.dropFirst(7)) }
            guard !line.hasPrefix("#"), let separator = line.firstIndex(of: "=") else { continue }
            let key = line[..<separator].trimmingCharacters(in: .whitespaces)
            var value = line[line.index(after: separator)...].trimmingCharacters(in: .whitespaces)
            if let quoted = unquoted(value) {
                value = quoted
            } else if let comment = value.range(of: " #") {
                value = value[..<comment.lowerBound].trimmingCharacters(in: .whitespaces)
            }
            values[key] = value
        }
        return values
    }

    /// A value in single or double quotes, with a comment after them or none: what is between them
    /// (the first closing quote followed by nothing, or by whitespace and a `#` comment, ends it —
    /// a `#` right after a quote is part of the value); nil when not quoted.
    static func unquoted(_ value: String) -> String? {
        guard let quote = value.first, quote == "\"" || quote == "'" else { return nil }
        let body = value.dropFirst()
        var index = body.startIndex
        while let close = body[index...].firstIndex(of: quote) {
            let after = body[body.index(after: close)...]
            let rest = after.drop { $0 == " " || $0 == "\t" }
            if rest.isEmpty || (rest.hasPrefix("#") && rest.count < after.count) { return String(body[..<close]) }
            index = body.index(after: close)
        }
        return nil
    }
}
