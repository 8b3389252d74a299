import Foundation

/// A built step with the policies that apply to it.
public struct BoundStep: Sendable {
    public var definition: StepDefinition
    public var step: any Step
    public var irreversible: Bool
    /// The labels it may end a message with besides the runtime's own (`StepPlugin.outcomes`).
    public var outcomes: [OutcomeLabel]
    /// Half the step's `heldFor`: how long a message that passed it may wait in memory (read once, not per message).
    let inMemoryWaitLimit: TimeInterval?

    public init(definition: StepDefinition, step: any Step, irreversible: Bool, outcomes: [OutcomeLabel] = []) {
        self.definition = definition
        self.step = step
        self.irreversible = irreversible
        self.outcomes = outcomes
        self.inMemoryWaitLimit = step.heldFor.map { $0.secondsDouble / 2 }
    }

    public var name: String { definition.name }
}
