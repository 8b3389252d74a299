import Foundation
import PipelineKit

/// A message's place in its sender's line for send slots (`SendPacer.Ticket`): kept with the
/// message while it waits in this worker, its id carried with it through the source, so a message
/// back from a delay queue takes up its place again.
enum PacingPlace: MessageValueKey {
    typealias Value = (pacer: SendPacer, ticket: SendPacer.Ticket)
    static let carriedKey = "pacing-ticket"

    /// Asks for the message's turn, in the place it has (or a new one); the place stays with the
    /// message until its turn comes.
    static func take(_ message: inout Message, _ pacer: SendPacer) async -> SendPacer.Turn {
        let held = message.values[Self.self]
        if let held, held.pacer !== pacer { held.pacer.away(held.ticket) }
        let ticket = held.flatMap { $0.pacer === pacer ? $0.ticket : nil }
            ?? pacer.ticket(lane: message.lane, order: message.firstSeen, id: message.carried[carriedKey].flatMap(UInt64.init))
        let turn = await pacer.take(ticket)
        switch turn {
        case .go:
            message.values[Self.self] = nil
            message.carried[carriedKey] = nil
        case .wait:
            message.values[Self.self] = (pacer, ticket)
            message.carried[carriedKey] = String(ticket.id)
        }
        return turn
    }

    /// The message leaves the worker, or waits for something else than its turn: its place stays in
    /// line (counted, not holding it) until it asks again.
    static func stepAway(_ message: Message) {
        guard let held = message.values[Self.self] else { return }
        held.pacer.away(held.ticket)
    }
}
