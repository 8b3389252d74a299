import Logging

/// What a step sees besides the message.
public struct StepContext: Sendable {
    /// The step's `name` in the pipeline.
    public var stepName: String
    /// The pipeline's logger; lines logged while a message is handled carry `internalId` and `step` (`MessageLogContext`).
    public var logger: Logger
    /// Identifies this worker process (idempotency key owners).
    public var workerID: String
    /// The wall clock (replaceable in pipeline tests).
    public var clock: any WallClock
    /// Pacing, holds and pauses shared by every message of this worker.
    public var flow: FlowControl
    /// What the pipeline's irreversible step says to do with a send in doubt (`Step.inDoubtPolicy`).
    public var inDoubt: InDoubtPolicy

    public init(stepName: String, logger: Logger, workerID: String, clock: any WallClock, flow: FlowControl, inDoubt: InDoubtPolicy = .standard) {
        self.stepName = stepName
        self.logger = logger
        self.workerID = workerID
        self.clock = clock
        self.flow = flow
        self.inDoubt = inDoubt
    }
}
