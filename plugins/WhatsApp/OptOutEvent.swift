import Foundation
import PipelineKit

/// `optout.added` / `optout.removed` (SPEC 16): `{event, recipient, sender, source, at}`.
public enum OptOutEvent {
    /// What changed a list.
    public enum Source: String, Sendable {
        /// An inbound message that was one of the keywords.
        case keyword
        /// `outbound-worker optout add|remove`.
        case cli
        /// A Cloud API refusal `131050`: the user stopped marketing messages.
        case refusal = "131050"
    }

    /// The event of `recipient` added to (or removed from) the list of `sender` (nil: all senders).
    public static func prepared(added: Bool, recipient: String, sender: String?, source: Source, at: Date) -> PreparedEvent {
        let name = added ? "optout.added" : "optout.removed"
        return PreparedEvent(routingKey: name, body: .object([
            "event": .string(name),
            "recipient": .string(recipient),
            "sender": sender.map(JSONValue.string) ?? .null,
            "source": .string(source.rawValue),
            "at": .string(UTCTimestamp.format(at)),
        ]))
    }
}
