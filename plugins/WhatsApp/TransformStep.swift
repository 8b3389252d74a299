import Foundation
import PipelineKit
import ValidatePlugin

/// Step `transform`: builds the Cloud API request body from the validated message.
public struct TransformStep: Step {
    let validator = MessageValidator()
    private let encoder: JSONEncoder

    public init() {
        encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    }

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        let validated = try message.values[ValidatedMessageKey.self] ?? validator.validate(message)
        let request = CloudAPIRequest(validated)
        let body: Data
        do {
            body = try encoder.encode(request)
        } catch {
            throw StepFailure(.invalid, "cannot encode the Cloud API request: \(error)")
        }
        message.values[PreparedRequestKey.self] = PreparedRequest(body: Array(body), phoneNumberID: validated.phoneNumberID, recipient: validated.to)
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
