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
        /// A reload made another pipeline current.
        let replaced = Atomic<Bool>(false)

        init(_ pipeline: AssembledPipeline) {
            self.pipeline = pipeline
        }
    }

    private let current: Mutex<Slot>
    private let retirements = RetirementLine()

    init(_ pipeline: AssembledPipeline) {
        current = Mutex(Slot(pipeline))
    }

    var pipeline: AssembledPipeline { current.withLock { $0.pipeline } }

    func checkout() -> CheckedOutPipeline {
        let slot = current.withLock { slot in
            slot.inFlight.add(1, ordering: .relaxed)
            return slot
        }
        return CheckedOutPipeline(executor: slot.pipeline.executor, isReplaced: { slot.replaced.load(ordering: .acquiring) },
                                  done: { slot.inFlight.subtract(1, ordering: .relaxed) })
    }

    /// Makes `pipeline` current, at once, and returns the previous one's retirement: it waits until
    /// no message is in flight on the previous pipeline and every pipeline replaced before it is
    /// retired (`RetirementLine`), then shuts down the previous pipeline's resources that `pipeline`
    /// does not use. A reload does not wait for it: a message keeps its pipeline while it waits in
    /// memory (a hold, a send in doubt: minutes), and the next SIGHUP — the fix of a bad token —
    /// must not wait behind it.
    func replace(with pipeline: AssembledPipeline) -> @Sendable (Logger) async -> Void {
        let (previous, place) = current.withLock { slot in
            let previous = slot
            previous.replaced.store(true, ordering: .releasing)
            slot = Slot(pipeline)
            return (previous, retirements.enter(isIdle: { previous.inFlight.load(ordering: .relaxed) == 0 }))
        }
        return { logger in
            await self.retirements.retire(place) {
                for (name, resource) in previous.pipeline.resources.byName where pipeline.resources.byName[name].map({ $0 as AnyObject }) !== (resource as AnyObject) {
                    logger.info("shutting down replaced resource", metadata: ["resource": .string(name)])
                    await resource.shutdown()
                }
            }
        }
    }

    /// Shuts down every resource of the current pipeline.
    func shutdown() async {
        for resource in pipeline.resources.byName.values { await resource.shutdown() }
    }
}
