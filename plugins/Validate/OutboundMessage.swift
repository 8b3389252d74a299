import Foundation
import PipelineKit

/// A message request that passed schema v1 validation, ready to transform.
public struct OutboundMessage: Sendable, Equatable {
    /// The kinds of media a message can carry.
    public enum MediaKind: String, Sendable, CaseIterable {
        case image, video, audio, document, sticker
    }

    /// The content of the message, by type.
    public enum Content: Sendable, Equatable {
        case text(body: String, previewURL: Bool)
        case template(name: String, languageCode: String, components: JSONValue?)
        case media(MediaKind, id: String?, link: String?, caption: String?, filename: String?)
        case location(latitude: Double, longitude: Double, name: String?, address: String?)
        case contacts(JSONValue)
        case interactive(JSONValue)
        case reaction(messageID: String, emoji: String)
    }

    public var internalID: String
    /// The recipient, normalised to `+` and digits.
    public var to: String
    /// The `type` field as given.
    public var type: String
    public var content: Content
    public var replyTo: String?
    public var phoneNumberID: String?
    /// Not to be sent after this.
    public var expiresAt: Date?
    /// The category the message names itself (`category`); nil: decided by its type and template.
    public var category: MessageCategory?
}

/// Where the validate step leaves the validated request for later steps.
public enum ValidatedMessageKey: MessageValueKey {
    public typealias Value = OutboundMessage
}

extension StepValue {
    /// The validated request `validate` leaves.
    public static let validatedMessage = StepValue(ValidatedMessageKey.self, "validated_message")
}
