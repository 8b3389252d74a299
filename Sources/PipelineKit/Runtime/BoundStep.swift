import Foundation

/// A built step with the policies that apply to it.
public struct BoundStep: Sendable {
    public var definition: StepDefinition
    public var step: any Step
    public var irreversible: Bool
    /// The labels it may end a message with besides the runtime's own (`StepPlugin.outcomes`).
    public var outcomes: [OutcomeLabel]
    /// How long after this step started a message that passed it may still wait in memory: its
    /// `heldFor` less a margin for the steps before the send, a quarter of it, at most 1 s (read once, not per message).
    let inMemoryWaitLimit: TimeInterval?

    public init(definition: StepDefinition, step: any Step, irreversible: Bool, outcomes: [OutcomeLabel] = []) {
        self.definition = definition
        self.step = step
        self.irreversible = irreversible
        self.outcomes = outcomes
        self.inMemoryWaitLimit = step.heldFor.map { $0.secondsDouble - min($0.secondsDouble / 4, 1) }
    }

    public var name: String { definition.name }
}
