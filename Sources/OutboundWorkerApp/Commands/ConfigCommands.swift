import ArgumentParser
import Foundation
import EventsPlugin
import PipelineKit

/// `check`: validates the pipeline and its variant without connecting to anything.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "check", abstract: "Validate the pipeline (and its variant) without connecting to anything.")

    @OptionGroup var options: PipelineOptions

    func run() throws {
        let environment = ProcessEnvironment.load()
        let result = options.load(environment)
        printDiagnostics(result.diagnostics)
        guard result.definition != nil else { throw ExitStatus.invalid }
        let warnings = result.diagnostics.count
        print("\(options.file(environment))\(options.variant(environment).map { " (\($0))" } ?? ""): ok\(warnings > 0 ? ", \(warnings) warning(s)" : "")")
    }
}

/// `plan`: prints the resolved pipeline.
struct PlanCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "plan", abstract: "Print the fully resolved pipeline (variant merged, variables substituted, defaults filled, secrets as ***).")

    @OptionGroup var options: PipelineOptions

    @Flag(name: .long, help: "Show where each value came from: base file, variant file, environment variable or default.")
    var explain = false

    func run() throws {
        let result = options.load(ProcessEnvironment.load())
        guard let definition = result.definition else {
            printDiagnostics(result.diagnostics)
            throw ExitStatus.invalid
        }
        printDiagnostics(result.diagnostics)
        print(PlanRenderer.render(definition, explain: explain), terminator: "")
    }
}

/// `schema`: prints the JSON Schema of the pipeline format.
struct SchemaCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "schema", abstract: "Print the JSON Schema of the pipeline file format (for editors), or with --events of event bodies.")

    @Flag(name: .long, help: "Print the configuration reference as Markdown instead (the README's tables).")
    var markdown = false

    @Flag(name: .long, help: "Print the JSON Schema of event bodies (outbound.*, delivery.*, webhook.*) instead.")
    var events = false

    func run() throws {
        if markdown {
            print(ReferenceGenerator.markdown(for: BuiltinPlugins.registry), terminator: "")
            return
        }
        let schema = events ? EventSchema.schema : SchemaGenerator.schema(for: BuiltinPlugins.registry)
        let data = try JSONSerialization.data(withJSONObject: try JSONSerialization.jsonObject(with: Data(schema.encodedBytes())), options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes])
        print(String(decoding: data, as: UTF8.self))
    }
}
