import PipelineKit
import ValidatePlugin

/// Step `transform`: builds the Cloud API request body from the validated message.
public struct TransformStep: Step {
    public init() {}

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard let validated = message.values[ValidatedMessageKey.self] else {
            throw StepFailure(.permanent, "no validated message: the pipeline needs a `validate` step before `\(context.stepName)`")
        }
        let body = CloudAPIRequest(validated).encoded()
        message.values[PreparedRequestKey.self] = PreparedRequest(body: body, phoneNumberID: validated.phoneNumberID, recipient: validated.to)
        return .next
    }
}

extension StepPlugin {
    /// The `transform` step plugin.
    public static let transform = StepPlugin(
        name: "transform",
        summary: "builds the WhatsApp Cloud API request body (snake_case, `to` normalised, `replyTo` as context, `biz_opaque_callback_data` = internalId)",
        settings: SettingsSchema([]),
        defaultOnError: .deadLetter,
        provides: [.request],
        requires: [.validatedMessage],
        make: { _ in TransformStep() }
    )
}
