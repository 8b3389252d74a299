import Dispatch
import Logging
import PipelineKit
import ServiceLifecycle
import Synchronization

/// How long shutdown may take, for every pipeline the worker has run — a reload that raises a
/// call's `timeout` raises them too — and their enforcement: past the graceful limit the services
/// are cancelled, and past the cancellation limit after that the process ends with a crash. A
/// `ServiceGroup`'s own limits are fixed when it is made, so a send begun at the drain's end on a
/// reloaded, slower `timeout` was cut by a crash (a `processing` key left, perhaps a second copy).
///
/// ```swift
/// let limits = ShutdownLimits(for: definition)
/// // on each reload: limits.include(newDefinition)
/// try await limits.enforce(on: ServiceGroup(configuration: configuration), from: { await worker.stopping() }, logger: logger)
/// ```
final class ShutdownLimits: Sendable {
    struct Bounds: Equatable {
        var graceful: Duration
        var cancellation: Duration
    }

    private let bounds: Mutex<Bounds>

    convenience init(for definition: PipelineDefinition) {
        self.init(Self.bounds(of: definition))
    }

    init(_ bounds: Bounds) {
        self.bounds = Mutex(bounds)
    }

    /// The limits now: the largest any pipeline run so far needs.
    var current: Bounds { bounds.withLock { $0 } }

    /// Raises the limits to what `definition` needs (never lowers them: a message may still run on an older pipeline).
    func include(_ definition: PipelineDefinition) {
        include(Self.bounds(of: definition))
    }

    /// Raises the limits to `needed` where it is larger.
    func include(_ needed: Bounds) {
        bounds.withLock { bounds in
            bounds.graceful = max(bounds.graceful, needed.graceful)
            bounds.cancellation = max(bounds.cancellation, needed.cancellation)
        }
    }

    /// How long the outcomes of the last sends may wait for the broker: two batches of events, each
    /// waiting for its confirm up to the publisher's 15 s (a broker under a memory or disk alarm).
    static let lastReports = Duration.seconds(30)

    /// Shutdown is bounded in every state — the drain, then a send in progress (its own timeout),
    /// then the last outcomes' confirms, then a margin — and past that the services are cancelled;
    /// their cancellation, whose end is a crash, leaves a send begun at the last moment its own
    /// timeout (a crash mid-send leaves a `processing` key and perhaps a second copy).
    static func bounds(of definition: PipelineDefinition) -> Bounds {
        let longest = definition.slowestCall?.timeout ?? .zero
        return Bounds(graceful: definition.worker.drainTimeout + longest + lastReports + .seconds(10), cancellation: longest + .seconds(5))
    }

    /// Runs `group` (made without limits of its own, every service of it shutting it down gracefully
    /// when it ends: a cancelled group has no limit); once `shutdownBegun` returns, ends a shutdown
    /// that outlasts the graceful limit by cancelling the group, and one whose cancellation outlasts
    /// the cancellation limit by a crash. The graceful limit is read when it would expire, so a reload
    /// during the drain (SIGHUP is still read then) counts; the cancellation limit when cancelling begins.
    func enforce(on group: ServiceGroup, from shutdownBegun: @escaping @Sendable () async -> Void, logger: Logger) async throws {
        var crash: DispatchWorkItem?
        defer { crash?.cancel() }
        try await withThrowingTaskGroup(of: Ending.self) { tasks in
            tasks.addTask {
                try await group.run()
                return .groupEnded
            }
            tasks.addTask {
                await shutdownBegun()
                return await self.waitOutGracefulLimit(from: .now)
            }
            waiting: while let ending = try await tasks.next() {
                switch ending {
                case .groupEnded: break waiting
                case .watchCancelled: continue waiting
                case .gracefulLimitPassed: break
                }
                let limits = current
                logger.error("shutdown outlasted its limit; cancelling what still runs", metadata: [
                    "graceful_limit": .string(DurationParser.format(limits.graceful)), "cancellation_limit": .string(DurationParser.format(limits.cancellation)),
                ])
                crash = Self.crash(after: limits.cancellation)
                // Only the group still runs: cancelling it is what the group's own limit did.
                tasks.cancelAll()
            }
            tasks.cancelAll()
        }
    }

    /// How a task of `enforce` ended.
    private enum Ending {
        case groupEnded
        case gracefulLimitPassed
        /// The watch over the limit was cancelled before it passed (the group may still run).
        case watchCancelled
    }

    /// Sleeps until the graceful limit, counted from `start`, has passed.
    private func waitOutGracefulLimit(from start: ContinuousClock.Instant) async -> Ending {
        while true {
            let deadline = start + current.graceful
            guard ContinuousClock.now < deadline else { return .gracefulLimitPassed }
            do {
                try await Task.sleep(until: deadline)
            } catch {
                return .watchCancelled
            }
        }
    }

    /// A crash `delay` from now, on a queue of its own (the cancelled tasks may never yield), unless cancelled.
    private static func crash(after delay: Duration) -> DispatchWorkItem {
        let item = DispatchWorkItem {
            fatalError("shutdown: cancellation outlasted its limit of \(DurationParser.format(delay))")
        }
        DispatchQueue.global().asyncAfter(deadline: .now() + delay.secondsDouble, execute: item)
        return item
    }
}
