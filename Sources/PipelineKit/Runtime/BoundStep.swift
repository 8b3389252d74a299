/// A built step with the policies that apply to it.
public struct BoundStep: Sendable {
    public var definition: StepDefinition
    public var step: any Step
    public var irreversible: Bool

    public init(definition: StepDefinition, step: any Step, irreversible: Bool) {
        self.definition = definition
        self.step = step
        self.irreversible = irreversible
    }

    public var name: String { definition.name }
}
