import Logging

/// A pipeline built from its definition: resources connected, steps made, executor ready.
public struct AssembledPipeline: Sendable {
    public let definition: PipelineDefinition
    public let resources: Resources
    public let executor: PipelineExecutor
}

/// Builds resources and steps through the registry's plugins; knows no plugin itself.
public struct PipelineAssembler: Sendable {
    public var registry: PluginRegistry
    public var workerID: String
    public var clock: any WallClock
    public var logger: Logger

    public init(registry: PluginRegistry, workerID: String, clock: any WallClock = SystemWallClock(), logger: Logger) {
        self.registry = registry
        self.workerID = workerID
        self.clock = clock
        self.logger = logger
    }

    /// Builds `definition`. Resources of `reuse` whose definition is unchanged are kept as they are
    /// (a reload does not reconnect what did not change).
    public func assemble(_ definition: PipelineDefinition, reuse previous: AssembledPipeline? = nil) async throws -> AssembledPipeline {
        var resources: [String: any Resource] = [:]
        for resource in definition.resources {
            if let previous, previous.definition.resource(named: resource.name) == resource, let existing = previous.resources.byName[resource.name] {
                resources[resource.name] = existing
                continue
            }
            guard let plugin = registry.resources[resource.uses] else { throw SettingsError(message: "no resource plugin `\(resource.uses)`") }
            var resourceLogger = logger
            resourceLogger[metadataKey: "resource"] = .string(resource.name)
            resources[resource.name] = try await plugin.make(ResourceBuildContext(name: resource.name, settings: resource.settings, logger: resourceLogger))
        }
        let built = Resources(resources)
        var steps: [BoundStep] = []
        for step in definition.steps {
            guard let plugin = registry.steps[step.uses] else { throw SettingsError(message: "no step plugin `\(step.uses)`") }
            var stepLogger = logger
            stepLogger[metadataKey: "step"] = .string(step.name)
            let made = try await plugin.make(StepBuildContext(definition: step, pipeline: definition, resources: built, logger: stepLogger))
            steps.append(BoundStep(definition: step, step: made, irreversible: plugin.irreversible))
        }
        let executor = PipelineExecutor(pipelineName: definition.name, steps: steps, retry: definition.retry, workerID: workerID, clock: clock, logger: logger)
        return AssembledPipeline(definition: definition, resources: built, executor: executor)
    }

    /// Builds the source of `definition`.
    public func makeSource(_ definition: PipelineDefinition) async throws -> any Source {
        guard let plugin = registry.sources[definition.source.uses] else { throw SettingsError(message: "no source plugin `\(definition.source.uses)`") }
        return try await plugin.make(SourceBuildContext(settings: definition.source.settings, retry: definition.retry, logger: logger))
    }
}
