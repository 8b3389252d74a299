import Logging
import PipelineKit
import Synchronization

/// Holds the pipeline new messages use. A reload swaps it; messages already in
/// flight finish on the pipeline they started with, whose unused resources are
/// shut down once the last of them is done (and those of every pipeline before it).
final class PipelineHost: PipelineProvider {
    /// One assembled pipeline and how many messages are using it.
    final class Slot: Sendable {
        let pipeline: AssembledPipeline
        let inFlight = Atomic<Int>(0)

        init(_ pipeline: AssembledPipeline) {
            self.pipeline = pipeline
        }
    }

    private struct State {
        var current: Slot
        /// Pipelines replaced whose unused resources are not shut down yet, oldest first.
        var retiring: [Slot] = []
    }

    private let state: Mutex<State>

    init(_ pipeline: AssembledPipeline) {
        state = Mutex(State(current: Slot(pipeline)))
    }

    var pipeline: AssembledPipeline { state.withLock { $0.current.pipeline } }

    func checkout() -> (executor: PipelineExecutor, done: @Sendable () -> Void) {
        let slot = state.withLock { state in
            state.current.inFlight.add(1, ordering: .relaxed)
            return state.current
        }
        return (slot.pipeline.executor, { slot.inFlight.subtract(1, ordering: .relaxed) })
    }

    /// Makes `pipeline` current, at once, and returns the previous one's retirement: it waits until
    /// no message is in flight on the previous pipeline and every pipeline replaced before it is
    /// retired, then shuts down the previous pipeline's resources that `pipeline` does not use. A
    /// reload does not wait for it: a message keeps its pipeline while it waits in memory (a hold, a
    /// send in doubt: minutes), and the next SIGHUP — the fix of a bad token — must not wait behind it.
    func replace(with pipeline: AssembledPipeline) -> @Sendable (Logger) async -> Void {
        let previous = state.withLock { state in
            defer { state.current = Slot(pipeline) }
            state.retiring.append(state.current)
            return state.current
        }
        return { logger in await self.retire(previous, replacedBy: pipeline, logger: logger) }
    }

    private func retire(_ previous: Slot, replacedBy pipeline: AssembledPipeline, logger: Logger) async {
        // (Polled: a drain at shutdown ends every wait; cancelled, the process is ending and the resources go now.)
        while state.withLock({ $0.retiring.first }) !== previous || previous.inFlight.load(ordering: .relaxed) > 0 {
            do { try await Task.sleep(for: .milliseconds(50)) } catch { break }
        }
        for (name, resource) in previous.pipeline.resources.byName where pipeline.resources.byName[name].map({ $0 as AnyObject }) !== (resource as AnyObject) {
            logger.info("shutting down replaced resource", metadata: ["resource": .string(name)])
            await resource.shutdown()
        }
        state.withLock { $0.retiring.removeAll { $0 === previous } }
    }

    /// Shuts down every resource of the current pipeline.
    func shutdown() async {
        for resource in pipeline.resources.byName.values { await resource.shutdown() }
    }
}
