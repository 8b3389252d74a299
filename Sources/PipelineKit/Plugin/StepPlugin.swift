import Logging

/// What a step plugin gets to build one step.
public struct StepBuildContext: Sendable {
    public var definition: StepDefinition
    public var pipeline: PipelineDefinition
    public var resources: Resources
    public var logger: Logger

    public init(definition: StepDefinition, pipeline: PipelineDefinition, resources: Resources, logger: Logger) {
        self.definition = definition
        self.pipeline = pipeline
        self.resources = resources
        self.logger = logger
    }

    public var settings: Settings { definition.settings }
}

/// A step kind (`uses:` under `steps:`): its settings, its default policies and how to build it.
///
/// ```swift
/// enum GreetSettings {
///     static let greeting = Setting.string("greeting", default: "Hi", "what to say")
///     static let schema = SettingsSchema(greeting)
/// }
///
/// extension StepPlugin {
///     static let greet = StepPlugin(
///         name: "greet", summary: "prefixes text bodies", settings: GreetSettings.schema,
///         requires: [.validatedMessage],
///         make: { context in GreetStep(greeting: context.settings[GreetSettings.greeting]) })
/// }
/// // registered once by the executable: registry.register(StepPlugin.greet)
/// ```
///
/// `make` runs once per pipeline (again on reload); `check` runs at `outbound-worker check`,
/// after every setting is valid, with the whole pipeline to judge rules across steps.
public struct StepPlugin: Sendable {
    public var name: String
    public var summary: String
    public var settings: SettingsSchema
    public var defaultOnError: ErrorPolicy
    public var defaultDegradation: DegradationPolicy
    /// Whether success has an effect outside that cannot be taken back (a sent message):
    /// after it, a later failure is logged and the message acknowledged, never retried.
    public var irreversible: Bool
    /// Top-level string fields of the message this step guarantees to later steps (for key templates).
    public var guaranteedFields: [String]
    /// Top-level string fields a message may have, checked by this step when present: a key template
    /// may use them, and `check` warns that a message without one cannot be keyed.
    public var optionalFields: [String]
    /// What this step leaves for later steps (names of message values, e.g. `request`).
    public var provides: [StepValue]
    /// What earlier steps must have left (`check` rejects a pipeline where no earlier step provides it).
    public var requires: [StepValue]
    /// For an irreversible step: its policy for sends in doubt, read from its settings (other
    /// steps' rules see it as `PipelineDefinition.inDoubt`).
    public var inDoubtPolicy: (@Sendable (Settings) -> InDoubtPolicy)?
    /// The labels its steps may end a message with (`StepOutcome.finish(as:_:)`) besides `duplicate`:
    /// counted from the start, accepted in pipeline tests, published as `outbound.<label>`.
    public var outcomes: [OutcomeLabel]
    /// Rules across settings and steps, run by `check` with every other rule (a setting that was not
    /// valid reads as its default meanwhile).
    public var check: (@Sendable (StepDefinition, PipelineDefinition) -> [Diagnostic])?
    public var make: @Sendable (StepBuildContext) async throws -> any Step

    public init(
        name: String,
        summary: String,
        settings: SettingsSchema,
        defaultOnError: ErrorPolicy = .deadLetter,
        defaultDegradation: DegradationPolicy = .failClosed,
        irreversible: Bool = false,
        guaranteedFields: [String] = [],
        optionalFields: [String] = [],
        provides: [StepValue] = [],
        requires: [StepValue] = [],
        outcomes: [OutcomeLabel] = [],
        inDoubtPolicy: (@Sendable (Settings) -> InDoubtPolicy)? = nil,
        check: (@Sendable (StepDefinition, PipelineDefinition) -> [Diagnostic])? = nil,
        make: @escaping @Sendable (StepBuildContext) async throws -> any Step
    ) {
        self.name = name
        self.summary = summary
        self.settings = settings
        self.defaultOnError = defaultOnError
        self.defaultDegradation = defaultDegradation
        self.irreversible = irreversible
        self.guaranteedFields = guaranteedFields
        self.optionalFields = optionalFields
        self.provides = provides
        self.requires = requires
        self.outcomes = outcomes
        self.inDoubtPolicy = inDoubtPolicy
        self.check = check
        self.make = make
    }
}
