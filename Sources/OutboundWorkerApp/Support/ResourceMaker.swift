import ArgumentParser
import Logging
import PipelineKit

/// Builds one resource of a pipeline as the worker builds it, for commands that need only that
/// resource (`status` reads an idempotency key, `optout` changes a list).
enum ResourceMaker {
    static func make(_ name: String, for step: StepDefinition, in view: PipelineLoader.StepsView) async throws -> any Resource {
        guard let resource = view.resources.first(where: { $0.name == name }), let plugin = BuiltinPlugins.registry.resources[resource.uses] else {
            throw ValidationError("no resource `\(name)` for step `\(step.name)`")
        }
        var logger = Logger(label: "outbound-worker.command")
        logger.logLevel = .error
        return try await plugin.make(ResourceBuildContext(name: name, settings: resource.settings, logger: logger))
    }
}
