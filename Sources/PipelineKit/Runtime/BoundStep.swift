/// A built step with the policies that apply to it.
public struct BoundStep: Sendable {
    public var definition: StepDefinition
    public var step: any Step
    public var irreversible: Bool
    /// The labels it may end a message with besides the runtime's own (`StepPlugin.outcomes`).
    public var outcomes: [OutcomeLabel]

    public init(definition: StepDefinition, step: any Step, irreversible: Bool, outcomes: [OutcomeLabel] = []) {
        self.definition = definition
        self.step = step
        self.irreversible = irreversible
        self.outcomes = outcomes
    }

    public var name: String { definition.name }
}
