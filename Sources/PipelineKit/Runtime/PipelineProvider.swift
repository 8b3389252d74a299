/// Hands the worker the pipeline a new message runs on. A message keeps the executor it
/// started with to its end, even across a reload; `done` says it is settled.
public protocol PipelineProvider: Sendable {
    func checkout() -> (executor: PipelineExecutor, done: @Sendable () -> Void)
}

/// One pipeline that never changes (tests, benchmarks).
public struct FixedPipeline: PipelineProvider {
    public let executor: PipelineExecutor

    public init(_ executor: PipelineExecutor) {
        self.executor = executor
    }

    public func checkout() -> (executor: PipelineExecutor, done: @Sendable () -> Void) {
        (executor, {})
    }
}
