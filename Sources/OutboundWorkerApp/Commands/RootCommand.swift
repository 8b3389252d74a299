import ArgumentParser
import Foundation

/// `outbound-worker`: the root command.
public struct RootCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "outbound-worker",
        abstract: "Sends WhatsApp messages from a RabbitMQ queue through a pipeline declared in YAML.",
        version: WorkerVersion.description,
        subcommands: [RunCommand.self, CheckCommand.self, PlanCommand.self, TestCommand.self, SchemaCommand.self, PublishCommand.self, LimitsCommand.self,
                      EventsCommand.self, ReplayCommand.self, StatusCommand.self, OptOutCommand.self]
    )

    public init() {}

    /// Parses the arguments and runs the command, mapping errors to SPEC's exit codes
    /// (0 ok, 1 invalid input or config, 2 usage, 3 cannot start).
    public static func main(arguments: [String]) async -> Int32 {
        // No command is a usage error (exit 2), the usage on standard error; `--help` is not.
        guard !arguments.isEmpty else {
            FileHandle.standardError.write(Data((helpMessage() + "\n").utf8))
            return ExitStatus.usage.rawValue
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            return 0
        } catch {
            let code = exitCode(for: error)
            let message = fullMessage(for: error)
            if !message.isEmpty {
                let stream = code == .success ? FileHandle.standardOutput : FileHandle.standardError
                stream.write(Data((message + "\n").utf8))
            }
            if code == .validationFailure { return ExitStatus.usage.rawValue }
            return code.rawValue
        }
    }
}
