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
}
