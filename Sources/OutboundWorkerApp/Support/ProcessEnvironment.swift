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
            if value.count >= 2, let first = value.first, first == "\"" || first == "'", value.last == first {
                value = String(value.dropFirst().dropLast())
            } else if let comment = value.range(of: " #") {
                value = value[..<comment.lowerBound].trimmingCharacters(in: .whitespaces)
            }
            values[key] = value
        }
        return values
    }
}
