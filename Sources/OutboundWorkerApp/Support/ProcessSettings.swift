import Logging

/// The process's own settings from the environment (`HEALTH_PORT`, `LOG_LEVEL`, `LOG_FORMAT`),
/// checked: a value that is not understood is an error, never a silent default.
struct ProcessSettings: Sendable {
    struct Invalid: Error, CustomStringConvertible {
        var description: String
    }

    /// How log lines are written.
    struct Logging: Sendable {
        var level: Logger.Level
        var json: Bool
    }

    var healthPort: Int
    var logging: Logging

    init(_ environment: [String: String], healthPortVariable: String = "HEALTH_PORT", defaultHealthPort: Int = 8080) throws {
        var problems: [String] = []
        healthPort = defaultHealthPort
        if let text = environment[healthPortVariable], !text.isEmpty {
            if let port = Int(text), (1...65535).contains(port) { healthPort = port } else { problems.append("\(healthPortVariable)=\(text) is not a port number (1–65535)") }
        }
        var level = Logger.Level.info
        if let text = environment["LOG_LEVEL"], !text.isEmpty {
            if let parsed = Logger.Level(rawValue: text.lowercased()) { level = parsed } else {
                problems.append("LOG_LEVEL=\(text) is not one of \(Logger.Level.allCases.map(\.rawValue).joined(separator: ", "))")
            }
        }
        var json = true
        if let text = environment["LOG_FORMAT"], !text.isEmpty {
            switch text.lowercased() {
            case "json": json = true
            case "text": json = false
            default: problems.append("LOG_FORMAT=\(text) is not json or text")
            }
        }
        logging = Logging(level: level, json: json)
        guard problems.isEmpty else { throw Invalid(description: "error: " + problems.joined(separator: "; error: ")) }
    }
}
