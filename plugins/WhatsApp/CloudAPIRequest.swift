import PipelineKit
import ValidatePlugin

/// The body of `POST /{version}/{phone-number-id}/messages`, in the Cloud API's snake_case
/// (written by `encoded()`).
public struct CloudAPIRequest: Sendable, Equatable {
    public struct Context: Sendable, Equatable {
        public var message_id: String
    }

    public struct Text: Sendable, Equatable {
        public var body: String
        public var preview_url: Bool
    }

    public struct Template: Sendable, Equatable {
        public struct Language: Sendable, Equatable {
            public var code: String
        }

        public var name: String
        public var language: Language
        public var components: JSONValue?
    }

    public struct Media: Sendable, Equatable {
        public var id: String?
        public var link: String?
        public var caption: String?
        public var filename: String?
    }

    public struct Location: Sendable, Equatable {
        public var latitude: Double
        public var longitude: Double
        public var name: String?
        public var address: String?
    }

    public struct Reaction: Sendable, Equatable {
        public var message_id: String
        public var emoji: String
    }

    public var messaging_product = "whatsapp"
    public var recipient_type = "individual"
    public var to: String
    /// The message's `internalId`: Meta's status webhooks carry it back.
    public var biz_opaque_callback_data: String?
    public var type: String
    public var context: Context?
    public var text: Text?
    public var template: Template?
    public var image: Media?
    public var video: Media?
    public var audio: Media?
    public var document: Media?
    public var sticker: Media?
    public var location: Location?
    public var contacts: JSONValue?
    public var interactive: JSONValue?
    public var reaction: Reaction?

    /// Builds the request for a validated message.
    public init(_ message: OutboundMessage) {
        to = message.to
        biz_opaque_callback_data = message.internalID
        type = message.type
        context = message.replyTo.map { Context(message_id: $0) }
        switch message.content {
        case .text(let body, let previewURL):
            text = Text(body: body, preview_url: previewURL)
        case .template(let name, let languageCode, let components):
            template = Template(name: name, language: .init(code: languageCode), components: components)
        case .media(let kind, let id, let link, let caption, let filename):
            let media = Media(id: id, link: link, caption: caption, filename: filename)
            switch kind {
            case .image: image = media
            case .video: video = media
            case .audio: audio = media
            case .document: document = media
            case .sticker: sticker = media
            }
        case .location(let latitude, let longitude, let name, let address):
            location = Location(latitude: latitude, longitude: longitude, name: name, address: address)
        case .contacts(let value):
            contacts = value
        case .interactive(let value):
            interactive = value
        case .reaction(let messageID, let emoji):
            reaction = Reaction(message_id: messageID, emoji: emoji)
        }
    }
}

/// A request ready to send: the encoded body and the sender it goes out from.
public struct PreparedRequest: Sendable, Equatable {
    public var body: [UInt8]
    /// The message's own sender, overriding the resource's `phone_number_id`.
    public var phoneNumberID: String?
    public var recipient: String

    public init(body: [UInt8], phoneNumberID: String?, recipient: String) {
        self.body = body
        self.phoneNumberID = phoneNumberID
        self.recipient = recipient
    }
}

/// Where `transform` leaves the prepared request for `dispatch`.
public enum PreparedRequestKey: MessageValueKey {
    public typealias Value = PreparedRequest
}

extension StepValue {
    /// The Cloud API request `transform` leaves for `dispatch`.
    public static let request = StepValue(PreparedRequestKey.self, "request")
}
