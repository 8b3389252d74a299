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
    /// The worker's pacing, holds and pauses: shared by every pipeline it builds, so a reload keeps them.
    public var flow: FlowControl
    public var logger: Logger

    public init(registry: PluginRegistry, workerID: String, clock: any WallClock = SystemWallClock(), flow: FlowControl? = nil, logger: Logger) {
        self.registry = registry
        self.workerID = workerID
        self.clock = clock
        self.flow = flow ?? FlowControl(clock: clock, logger: logger)
        self.logger = logger
    }

    /// Builds `definition`. Resources of `reuse` whose definition and dependencies are unchanged
    /// are kept as they are (a reload does not reconnect what did not change).
    ///
    /// When a resource or step cannot be made, the resources this call built are shut down
    /// again before the error is thrown (the reused ones stay with `previous`).
    public func assemble(_ definition: PipelineDefinition, reuse previous: AssembledPipeline? = nil) async throws -> AssembledPipeline {
        var resources: [String: any Resource] = [:]
        var rebuilt: [String] = []
        do {
            return try await assemble(definition, reuse: previous, into: &resources, rebuilt: &rebuilt)
        } catch {
            // Dependents first: in the reverse of the order they were made.
            for name in rebuilt.reversed() { await resources[name]?.shutdown() }
            throw error
        }
    }

    private func assemble(_ definition: PipelineDefinition, reuse previous: AssembledPipeline?, into resources: inout [String: any Resource],
                          rebuilt: inout [String]) async throws -> AssembledPipeline {
        for resource in dependencyOrder(definition) {
            let dependencies = self.dependencies(of: resource, in: definition)
            if let previous, previous.definition.resource(named: resource.name) == resource, dependencies.isDisjoint(with: rebuilt),
               let existing = previous.resources.byName[resource.name] {
                resources[resource.name] = existing
                continue
            }
            guard let plugin = registry.resources[resource.uses] else { throw SettingsError(message: "no resource plugin `\(resource.uses)`") }
            var resourceLogger = logger
            resourceLogger[metadataKey: "resource"] = .string(resource.name)
            resources[resource.name] = try await plugin.make(ResourceBuildContext(name: resource.name, settings: resource.settings, resources: Resources(resources), logger: resourceLogger))
            rebuilt.append(resource.name)
        }
        let built = Resources(resources)
        var steps: [BoundStep] = []
        for step in definition.steps {
            guard let plugin = registry.steps[step.uses] else { throw SettingsError(message: "no step plugin `\(step.uses)`") }
            var stepLogger = logger
            stepLogger[metadataKey: "step"] = .string(step.name)
            let made = try await plugin.make(StepBuildContext(definition: step, pipeline: definition, resources: built, logger: stepLogger))
            steps.append(BoundStep(definition: step, step: made, irreversible: plugin.irreversible, outcomes: plugin.outcomes))
        }
        let executor = PipelineExecutor(pipelineName: definition.name, steps: steps, worker: definition.worker, workerID: workerID, clock: clock, flow: flow, logger: logger)
        return AssembledPipeline(definition: definition, resources: built, executor: executor)
    }

    /// Builds the source of `definition`.
    public func makeSource(_ definition: PipelineDefinition) async throws -> any Source {
        guard let plugin = registry.sources[definition.source.uses] else { throw SettingsError(message: "no source plugin `\(definition.source.uses)`") }
        return try await plugin.make(SourceBuildContext(settings: definition.source.settings, worker: definition.worker, logger: logger))
    }

    /// Builds the outcome sink of `definition` (`events:`), when it has one.
    public func makeSink(_ definition: PipelineDefinition) async throws -> (any OutcomeSink)? {
        guard let events = definition.events else { return nil }
        guard let plugin = registry.sinks[events.uses] else { throw SettingsError(message: "no sink plugin `\(events.uses)`") }
        return try await plugin.make(SinkBuildContext(settings: events.settings, pipelineName: definition.name, workerID: workerID, logger: logger))
    }

    /// The resources `resource` names in its settings (a store it shares, …).
    private func dependencies(of resource: ComponentDefinition, in definition: PipelineDefinition) -> Set<String> {
        guard let schema = registry.resources[resource.uses]?.settings else { return [] }
        return Set(resource.settings.entries.compactMap { entry -> String? in
            guard case .resource? = schema[entry.name]?.type, case .string(let name) = entry.value else { return nil }
            return definition.resource(named: name) != nil ? name : nil
        })
    }

    /// The resources in an order where each comes after those it names.
    private func dependencyOrder(_ definition: PipelineDefinition) -> [ComponentDefinition] {
        var ordered: [ComponentDefinition] = []
        var placed: Set<String> = []
        var pending = definition.resources
        while !pending.isEmpty {
            let ready = pending.filter { dependencies(of: $0, in: definition).subtracting([$0.name]).isSubset(of: placed) }
            // A cycle cannot be built in order: take the rest as written (their plugins report what is missing).
            let next = ready.isEmpty ? pending : ready
            ordered += next
            placed.formUnion(next.map(\.name))
            pending.removeAll { placed.contains($0.name) }
        }
        return ordered
    }
}
