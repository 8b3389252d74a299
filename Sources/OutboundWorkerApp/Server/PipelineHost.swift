import Logging
import PipelineKit
import Synchronization

/// Holds the pipeline new messages use. A reload swaps it; messages already in
/// flight finish on the pipeline they started with, whose unused resources are
/// shut down once the last of them is done.
final class PipelineHost: PipelineProvider {
    /// One assembled pipeline and how many messages are using it.
    final class Slot: Sendable {
        let pipeline: AssembledPipeline
        let inFlight = Atomic<Int>(0)

        init(_ pipeline: AssembledPipeline) {
            self.pipeline = pipeline
        }
    }

    private let current: Mutex<Slot>

    init(_ pipeline: AssembledPipeline) {
        current = Mutex(Slot(pipeline))
    }

    var pipeline: AssembledPipeline { current.withLock { $0.pipeline } }

    func checkout() -> (executor: PipelineExecutor, done: @Sendable () -> Void) {
        let slot = current.withLock { slot in
            slot.inFlight.add(1, ordering: .relaxed)
            return slot
        }
        return (slot.pipeline.executor, { slot.inFlight.subtract(1, ordering: .relaxed) })
    }

    /// Makes `pipeline` current and calls `swapped`; returns once the previous one is idle and its
    /// unused resources are shut down.
    func replace(with pipeline: AssembledPipeline, logger: Logger, swapped: () -> Void = {}) async {
        let previous = current.withLock { slot in
            defer { slot = Slot(pipeline) }
            return slot
        }
        swapped()
        while previous.inFlight.load(ordering: .relaxed) > 0 {
            try? await Task.sleep(for: .milliseconds(50))
        }
        for (name, resource) in previous.pipeline.resources.byName where pipeline.resources.byName[name].map({ $0 as AnyObject }) !== (resource as AnyObject) {
            logger.info("shutting down replaced resource", metadata: ["resource": .string(name)])
            await resource.shutdown()
        }
    }

    /// Shuts down every resource of the current pipeline.
    func shutdown() async {
        for resource in pipeline.resources.byName.values { await resource.shutdown() }
    }
}
