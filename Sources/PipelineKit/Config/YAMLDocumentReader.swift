import Foundation
import Yams

/// Reads a YAML file into a `ConfigNode` tree that remembers line and column of every value.
public enum YAMLDocumentReader {
    /// Files larger than this are refused before parsing: no pipeline is that large.
    public static let maximumFileSize = 1 << 20

    /// Reads and parses `path`; every failure is a diagnostic naming the file (and position where known).
    public static func read(path: String) throws(PipelineConfigurationError) -> ConfigNode {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: path))
        } catch {
            throw PipelineConfigurationError([.error(at: SourceLocation(file: path, line: 1, column: 1), "cannot read the file: \(error.localizedDescription)")])
        }
        return try parse(data: data, file: path)
    }

    /// Parses YAML bytes; `file` names them in diagnostics.
    public static func parse(data: Data, file: String) throws(PipelineConfigurationError) -> ConfigNode {
        let start = SourceLocation(file: file, line: 1, column: 1)
        guard data.count <= maximumFileSize else {
            throw PipelineConfigurationError([.error(at: start, "file is \(data.count) bytes; a pipeline file may be at most \(maximumFileSize) bytes")])
        }
        guard !data.contains(0), let text = String(data: data, encoding: .utf8) else {
            throw PipelineConfigurationError([.error(at: start, "file is not UTF-8 text")])
        }
        return try parse(text: text, file: file)
    }

    /// Parses YAML text; `file` names it in diagnostics.
    public static func parse(text: String, file: String) throws(PipelineConfigurationError) -> ConfigNode {
        let start = SourceLocation(file: file, line: 1, column: 1)
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch let error as YamlError {
            throw PipelineConfigurationError([diagnostic(for: error, file: file)])
        } catch {
            throw PipelineConfigurationError([.error(at: start, "cannot parse YAML: \(error)")])
        }
        guard let root else {
            throw PipelineConfigurationError([.error(at: start, "file is empty; a pipeline needs at least `version`, `source` and `steps`")])
        }
        return try convert(root, file: file)
    }

    private static func convert(_ node: Node, file: String) throws(PipelineConfigurationError) -> ConfigNode {
        let location = SourceLocation(file: file, line: node.mark?.line ?? 1, column: node.mark?.column ?? 1)
        switch node {
        case .scalar(let scalar):
            let quoted = scalar.style == .singleQuoted || scalar.style == .doubleQuoted || scalar.style == .literal || scalar.style == .folded
            if !quoted, scalar.string.isEmpty || ["~", "null", "Null", "NULL"].contains(scalar.string) {
                return ConfigNode(.null, at: location)
            }
            return ConfigNode(.scalar(scalar.string, quoted: quoted), at: location)
        case .mapping(let mapping):
            var entries: [ConfigEntry] = []
            var seen: [String: SourceLocation] = [:]
            for (key, value) in mapping {
                let keyLocation = SourceLocation(file: file, line: key.mark?.line ?? location.line, column: key.mark?.column ?? location.column)
                guard case .scalar(let keyScalar) = key else {
                    throw PipelineConfigurationError([.error(at: keyLocation, "a map key must be a plain name, not a \(key.isMapping ? "map" : "list")")])
                }
                if let first = seen[keyScalar.string] {
                    throw PipelineConfigurationError([.error(at: keyLocation, "duplicate key `\(keyScalar.string)` (first at \(first.line):\(first.column))")])
                }
                seen[keyScalar.string] = keyLocation
                entries.append(ConfigEntry(key: keyScalar.string, keyLocation: keyLocation, value: try convert(value, file: file)))
            }
            return ConfigNode(.mapping(entries), at: location)
        case .sequence(let sequence):
            var items: [ConfigNode] = []
            for item in sequence {
                items.append(try convert(item, file: file))
            }
            return ConfigNode(.sequence(items), at: location)
        case .alias:
            throw PipelineConfigurationError([.error(at: location, "unresolved YAML alias")])
        }
    }

    private static func diagnostic(for error: YamlError, file: String) -> Diagnostic {
        func at(_ mark: Mark) -> SourceLocation { SourceLocation(file: file, line: mark.line, column: mark.column) }
        switch error {
        case .scanner(let context, let problem, let mark, _),
             .parser(let context, let problem, let mark, _),
             .composer(let context, let problem, let mark, _):
            let detail = context.map { "\($0.text) at \($0.mark.line):\($0.mark.column): " } ?? ""
            return .error(at: at(mark), "YAML syntax error: \(detail)\(problem)")
        case .reader(let problem, _, _, _):
            return .error(at: SourceLocation(file: file, line: 1, column: 1), "file cannot be read as YAML text: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return .error(at: at(context.mark), "duplicate keys \(duplicates.joined(separator: ", "))")
        default:
            return .error(at: SourceLocation(file: file, line: 1, column: 1), "cannot parse YAML: \(error)")
        }
    }
}

extension Node {
    fileprivate var isMapping: Bool {
        if case .mapping = self { return true }
        return false
    }
}
