import ArgumentParser
import Foundation
import PipelineKit

/// `--pipeline FILE` and `--env NAME`, defaulting to `$PIPELINE_FILE` / `$PIPELINE_ENV`.
struct PipelineOptions: ParsableArguments {
    @Option(name: .long, help: "Pipeline file (default: $PIPELINE_FILE, else pipelines/outbound.yaml).")
    var pipeline: String?

    @Option(name: .long, help: "Variant to merge over the pipeline, e.g. staging (default: $PIPELINE_ENV).")
    var env: String?

    func file(_ environment: [String: String]) -> String {
        pipeline ?? environment["PIPELINE_FILE"].flatMap { $0.isEmpty ? nil : $0 } ?? "pipelines/outbound.yaml"
    }

    func variant(_ environment: [String: String]) -> String? {
        env ?? environment["PIPELINE_ENV"].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Loads and validates the pipeline with the built-in plugins.
    func load(_ environment: [String: String], registry: PluginRegistry = BuiltinPlugins.registry) -> PipelineLoader.Result {
        PipelineLoader(registry: registry, environment: environment).load(path: file(environment), variant: variant(environment))
    }

    /// The part of the pipeline an operator command reads (`read`, with the built-in plugins, this
    /// file and variant, and the process's environment), its diagnostics printed to standard
    /// error; the command ends `invalid` when the part could not be read.
    ///
    /// ```swift
    /// let events = try options.read { $0.loadEvents(path: $1, variant: $2) }
    /// ```
    func read<Part>(_ read: (PipelineLoader, _ path: String, _ variant: String?) -> (Part?, diagnostics: [Diagnostic])) throws -> Part {
        let environment = ProcessEnvironment.load()
        let (part, diagnostics) = read(PipelineLoader(registry: BuiltinPlugins.registry, environment: environment), file(environment), variant(environment))
        printDiagnostics(diagnostics)
        guard let part else { throw ExitStatus.invalid }
        return part
    }

    /// The source and the worker settings (`read`).
    func readSource() throws -> (source: ComponentDefinition, worker: WorkerConfiguration) {
        try read { loader, path, variant in
            let loaded = loader.loadSource(path: path, variant: variant)
            return (loaded.source.map { ($0, loaded.worker) }, loaded.diagnostics)
        }
    }
}

/// Prints diagnostics to standard error in `FILE:LINE:COL: error: MESSAGE` form.
func printDiagnostics(_ diagnostics: [Diagnostic]) {
    for diagnostic in diagnostics {
        FileHandle.standardError.write(Data((diagnostic.description + "\n").utf8))
    }
}

/// Exit codes of SPEC section 2.
enum ExitStatus {
    static let invalid = ExitCode(1)
    static let usage = ExitCode(2)
    static let cannotStart = ExitCode(3)

    /// The pipeline lacks what a command needs (a step, a store): `message` on standard error and
    /// exit 1, as for any invalid configuration — not 2 with the command's usage.
    static func pipelineLacks(_ message: String) -> ExitCode {
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        return invalid
    }

    /// Runs a store call; an unavailable store ends the command with exit 3 and the reason, naming
    /// what could not be read (`opt-out lists`, `limits`).
    static func unavailableAsExit<T>(_ what: String, _ body: () async throws(StoreUnavailable) -> T) async throws -> T {
        do {
            return try await body()
        } catch {
            FileHandle.standardError.write(Data("\(what) unavailable: \(error.reason)\n".utf8))
            throw cannotStart
        }
    }
}
