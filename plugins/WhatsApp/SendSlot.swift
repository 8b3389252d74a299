import Foundation
import PipelineKit

/// The send slot `dispatch` reserved for a message while it waits for it, kept with the
/// message when it waits through the source (`Message.carried`), so its place is not lost.
enum SendSlot {
    static let carriedKey = "send-slot"

    /// The latest slot a message can carry: a pacer reserves none that far ahead.
    static let farthest: TimeInterval = 86_400

    /// The slot the message carries; nil when it carries none, or text that is no time within
    /// `farthest` of `now` (not this worker's: a header set upstream must not hold the message).
    static func read(_ message: Message, now: Date) -> Date? {
        guard let slot = message.carried[carriedKey].flatMap(Date.init(epochMillisecondsText:)) else { return nil }
        return slot.timeIntervalSince(now) <= farthest ? slot : nil
    }

    static func write(_ slot: Date?, _ message: inout Message) {
        message.carried[carriedKey] = slot.map { String($0.epochMilliseconds(.toNearestOrAwayFromZero)) }
    }
}
