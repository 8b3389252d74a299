import PipelineKit

/// Step `validate`: the message matches schema v1; the validated request is left for later steps.
public struct ValidateStep: Step {
    public let validator: MessageValidator

    public init(validator: MessageValidator) {
        self.validator = validator
    }

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        message.values[ValidatedMessageKey.self] = try validator.validate(message)
        return .next
    }
}

extension StepPlugin {
    /// The `validate` step plugin.
    public static let validate = StepPlugin(
        name: "validate",
        summary: "checks each message against the outbound message schema v1 and the Cloud API limits",
        settings: SettingsSchema([
            SettingSpec("max_bytes", .integer(256...16_777_216), default: .integer(65_536), "largest accepted message body in bytes"),
        ]),
        defaultOnError: .deadLetter,
        guaranteedFields: ["internalId", "to", "type"],
        make: { context in
            ValidateStep(validator: MessageValidator(maxBytes: try context.settings.integer("max_bytes")))
        }
    )
}
