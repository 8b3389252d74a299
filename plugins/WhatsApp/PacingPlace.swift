import Foundation
import PipelineKit

/// A message's place in its sender's line for send slots (`SendPacer.Ticket`): kept with the
/// message while it waits in this worker, and carried with it through the source (`{id}@{turn
/// expected, ms}`), so a message back from a delay queue takes up its place again — and one back
/// long before its turn (a delay queue holds it less long than its wait) goes round again without
/// asking the pacer.
enum PacingPlace: MessageValueKey {
    typealias Value = (pacer: SendPacer, ticket: SendPacer.Ticket)
    static let carriedKey = "pacing-ticket"
    /// A message back this long or longer before its expected turn goes round again at once.
    static let farAhead: TimeInterval = 2

    /// Asks for the message's turn, in the place it has (or a new one); the place stays with the
    /// message until its turn comes.
    static func take(_ message: inout Message, _ pacer: SendPacer, now: Date) async -> SendPacer.Turn {
        let held = message.values[Self.self]
        if let held, held.pacer !== pacer { held.pacer.away(held.ticket) }
        let carried = message.carried[carriedKey].map(Carried.init)
        if held == nil, let turn = carried?.turn, (farAhead...SendSlot.farthest).contains(turn.timeIntervalSince(now)) { return .wait(until: turn) }
        let ticket = held.flatMap { $0.pacer === pacer ? $0.ticket : nil }
            ?? pacer.ticket(lane: message.lane, order: message.firstSeen, id: carried?.id)
        let turn = await pacer.take(ticket)
        switch turn {
        case .go:
            message.values[Self.self] = nil
            message.carried[carriedKey] = nil
        case .wait(let until):
            message.values[Self.self] = (pacer, ticket)
            message.carried[carriedKey] = "\(ticket.id)@\(until.epochMilliseconds(.toNearestOrAwayFromZero))"
        }
        return turn
    }

    /// The carried note: the ticket's id and when its turn was expected.
    private struct Carried {
        var id: UInt64?
        var turn: Date?

        init(_ text: String) {
            let parts = text.split(separator: "@")
            id = parts.first.flatMap { UInt64($0) }
            turn = parts.dropFirst().first.flatMap(Date.init(epochMillisecondsText:))
        }
    }

    /// The message leaves the worker, or waits for something else than its turn: its place stays in
    /// line (not holding it) until it asks again.
    static func stepAway(_ message: Message) {
        guard let held = message.values[Self.self] else { return }
        held.pacer.away(held.ticket)
    }
}
