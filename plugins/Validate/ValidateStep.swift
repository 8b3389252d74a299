import PipelineKit

/// Step `validate`: the message matches schema v1; the validated request is left for later steps.
public struct ValidateStep: Step {
    public let validator: MessageValidator

    static let maxBodyBytes = Setting.integer("max_body_bytes", 256...Message.maximumParsedBytes, default: 1 << 20,
                                              "largest accepted message body in bytes (bodies nested deeper than 64 levels, or of more than 100,000 JSON values and one per 8 bytes beyond, are refused too; a body over 16 MiB is not read at all)")

    public init(validator: MessageValidator) {
        self.validator = validator
    }

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        let validated = try validator.validate(message)
        message.values[ValidatedMessageKey.self] = validated
        message.report("to", .string(validated.to))
        if let sender = validated.phoneNumberID { message.report("phoneNumberId", .string(sender)) }
        if let expiresAt = validated.expiresAt { message.notAfter = min(message.notAfter ?? expiresAt, expiresAt) }
        return .next
    }
}

extension StepPlugin {
    /// The `validate` step plugin.
    public static let validate = StepPlugin(
        name: "validate",
        summary: "checks each message against the outbound message schema v1 and the Cloud API limits",
        settings: SettingsSchema(ValidateStep.maxBodyBytes),
        defaultOnError: .deadLetter,
        guaranteedFields: ["internalId", "to", "type"],
        optionalFields: ["phoneNumberId", "replyTo", "category", "expiresAt"],
        provides: [.validatedMessage],
        make: { context in
            ValidateStep(validator: MessageValidator(maxBytes: context.settings[ValidateStep.maxBodyBytes]))
        }
    )
}
