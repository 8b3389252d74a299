import ArgumentParser
import Foundation

/// `test`: runs pipeline test cases with in-memory stand-ins and no network.
struct TestCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "test", abstract: "Run pipeline test cases (no network); default files: pipelines/tests/*.yaml.")

    enum Format: String, ExpressibleByArgument { case text, junit }

    @Option(name: .long, help: "Output format: text or junit (JUnit XML).")
    var format: Format = .text

    @Option(name: .long, help: "With --format junit, write the XML to this file instead of standard output.")
    var output: String?

    @Argument(help: "Test files (default: pipelines/tests/*.yaml).")
    var files: [String] = []

    func validate() throws {
        // (It was ignored: no file written, and nothing said so.)
        if output != nil, format != .junit { throw ValidationError("--output writes the JUnit XML: give --format junit with it") }
    }

    func run() async throws {
        var paths = files
        if paths.isEmpty {
            let folder = "pipelines/tests"
            paths = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? [])
                .filter { $0.hasSuffix(".yaml") || $0.hasSuffix(".yml") }.sorted().map { "\(folder)/\($0)" }
            if paths.isEmpty {
                FileHandle.standardError.write(Data("no test files in \(folder)/\n".utf8))
                throw ExitStatus.invalid
            }
        }
        let runner = PipelineTestRunner(environment: ProcessEnvironment.load())
        var reports: [PipelineTestRunner.FileReport] = []
        for path in paths { reports.append(await runner.run(file: path)) }
        switch format {
        case .text:
            print(TestReportFormatter.text(reports), terminator: "")
        case .junit:
            let xml = TestReportFormatter.junit(reports)
            if let output {
                try xml.write(toFile: output, atomically: true, encoding: .utf8)
                print(TestReportFormatter.summary(reports))
            } else {
                print(xml, terminator: "")
            }
        }
        if !reports.allSatisfy(\.passed) { throw ExitStatus.invalid }
    }
}
