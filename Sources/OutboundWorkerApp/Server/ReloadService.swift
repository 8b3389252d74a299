import Logging
import PipelineKit
import ServiceLifecycle
import UnixSignals

/// Re-reads `.env` and the pipeline on SIGHUP. A valid pipeline is used for new messages; an invalid
/// one is rejected with its errors logged in the `check` format, and the old one stays.
struct ReloadService: Service {
    /// SIGHUPs, trapped since the process began (one sent while it started reloads once this runs).
    let signals: UnixSignalsSequence
    let registry: PluginRegistry
    /// Reads the environment anew (`.env` under the process environment) on each reload.
    let environment: @Sendable () -> [String: String]
    let file: String
    let variant: String?
    let assembler: PipelineAssembler
    let host: PipelineHost
    /// Its pauses end when the pipeline changes (a new token, a fixed CA): the next message probes at once.
    let worker: PipelineWorker
    /// Raised by a pipeline whose calls may take longer (a send begun at the drain's end runs its `timeout`).
    let shutdownLimits: ShutdownLimits
    /// The pipeline the process started with: what the source, the events sink and the health server were built from.
    let started: PipelineDefinition
    let logger: Logger

    func run() async throws {
        // The pipelines replaced retire beside the next reloads (their messages may wait in memory for minutes).
        await withDiscardingTaskGroup { retirements in
            for await _ in signals.cancelOnGracefulShutdown() {
                if let retire = await reload() { retirements.addTask { await retire(logger) } }
            }
        }
    }

    /// Loads, validates and swaps in the pipeline; logs what happened. Returns the replaced
    /// pipeline's retirement (`PipelineHost.replace`), nil when nothing was replaced.
    func reload() async -> (@Sendable (Logger) async -> Void)? {
        logger.info("reloading pipeline", metadata: ["file": .string(file), "variant": .string(variant ?? "")])
        let result = PipelineLoader(registry: registry, environment: environment()).load(path: file, variant: variant)
        guard let loaded = result.definition else {
            for diagnostic in result.diagnostics {
                logger.error("\(diagnostic.description)")
            }
            logger.error("reload rejected: the pipeline has errors; the previous pipeline stays in use")
            return nil
        }
        // Built once at start (compared with that, not the last reload): a reload that changed them went on as if applied.
        let restartOnly = Self.restartOnlyChanges(from: started, to: loaded)
        if !restartOnly.isEmpty {
            logger.warning("changes to \(restartOnly.joined(separator: ", ")) take effect only after a restart; what runs is unchanged")
        }
        let definition = Self.applicable(loaded, started: started)
        let old = host.pipeline
        if definition == old.definition {
            logger.info("pipeline unchanged")
            return nil
        }
        do {
            let assembled = try await assembler.assemble(definition, reuse: old)
            logger.info("pipeline reloaded", metadata: ["digest": .string(definition.digest), "previous_digest": .string(old.definition.digest),
                                                        "changed": .string(Self.changes(from: old.definition, to: definition).joined(separator: ", "))])
            shutdownLimits.include(definition)
            let retire = host.replace(with: assembled)
            // The pauses end as soon as the new pipeline is in use, not once the old one has drained.
            worker.endPauses()
            return retire
        } catch {
            logger.error("reload rejected: cannot build the new pipeline; the previous pipeline stays in use", metadata: ["error": "\(error)"])
            return nil
        }
    }

    /// The parts that differ which a reload does not change: the source, the events sink, the health port.
    static func restartOnlyChanges(from old: PipelineDefinition, to new: PipelineDefinition) -> [String] {
        [("`source`", old.source != new.source), ("`events`", old.events != new.events), ("the health port", old.healthPort != new.healthPort)]
            .filter(\.1).map(\.0)
    }

    /// `definition` with what a reload does not change as the process started it: the source with
    /// the runtime settings read from it (concurrency, retry, pauses, ages), the events sink, the
    /// health port. A new executor built with a changed `retry` dead-lettered after the new
    /// `max_attempts` while the source's delay queues stayed those of the old backoff.
    static func applicable(_ definition: PipelineDefinition, started: PipelineDefinition) -> PipelineDefinition {
        var applicable = definition
        applicable.source = started.source
        applicable.worker = started.worker
        applicable.events = started.events
        applicable.healthPort = started.healthPort
        return applicable
    }

    /// The parts that differ, by name (`step idempotency`, `resource redis`, …).
    static func changes(from old: PipelineDefinition, to new: PipelineDefinition) -> [String] {
        var changed: [String] = []
        for resource in new.resources where old.resource(named: resource.name) != resource { changed.append("resource \(resource.name)") }
        for step in new.steps where old.step(named: step.name) != step { changed.append("step \(step.name)") }
        for step in old.steps where new.step(named: step.name) == nil { changed.append("removed step \(step.name)") }
        return changed
    }
}
