import PipelineKit
import ValidatePlugin

/// Step `transform`: builds the Cloud API request body from the validated message.
public struct TransformStep: Step {
    let validator = MessageValidator()

    public init() {}

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        let validated = try message.values[ValidatedMessageKey.self] ?? validator.validate(message)
        let body = CloudAPIRequest(validated).encoded()
        message.values[PreparedRequestKey.self] = PreparedRequest(body: body, phoneNumberID: validated.phoneNumberID, recipient: validated.to)
        return .next
    }
}

extension StepPlugin {
    /// The `transform` step plugin.
    public static let transform = StepPlugin(
        name: "transform",
        summary: "builds the WhatsApp Cloud API request body (snake_case, `to` normalised, `replyTo` as context)",
        settings: SettingsSchema([]),
        defaultOnError: .deadLetter,
        make: { _ in TransformStep() }
    )
}
