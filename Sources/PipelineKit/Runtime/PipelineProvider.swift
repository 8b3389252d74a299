/// Hands the worker the pipeline a new message runs on. A running message keeps the executor
/// it started with to its end, even across a reload; one waiting in memory when a reload replaced
/// it goes round the source to run on the new one (`CheckedOutPipeline.isReplaced`).
public protocol PipelineProvider: Sendable {
    func checkout() -> CheckedOutPipeline
}

/// The pipeline a message runs on, from `PipelineProvider.checkout`.
public struct CheckedOutPipeline: Sendable {
    public let executor: PipelineExecutor
    /// True once a reload has made another pipeline current: a message waiting in memory then
    /// goes round the source to run on the new one, instead of going on with what the reload
    /// replaced (a token that failed, a CA that was not trusted).
    public let isReplaced: @Sendable () -> Bool
    /// The message is settled: it no longer uses the pipeline.
    public let done: @Sendable () -> Void

    public init(executor: PipelineExecutor, isReplaced: @escaping @Sendable () -> Bool = { false }, done: @escaping @Sendable () -> Void = {}) {
        self.executor = executor
        self.isReplaced = isReplaced
        self.done = done
    }
}

/// One pipeline that never changes (tests, benchmarks).
public struct FixedPipeline: PipelineProvider {
    public let executor: PipelineExecutor

    public init(_ executor: PipelineExecutor) {
        self.executor = executor
    }

    public func checkout() -> CheckedOutPipeline {
        CheckedOutPipeline(executor: executor)
    }
}
