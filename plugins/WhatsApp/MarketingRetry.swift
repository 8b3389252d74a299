import Foundation
import PipelineKit

/// When a marketing message that Meta declined (`131049`) may go once more, kept with the message
/// while it waits through the delay queues (`Message.carried`), so it never goes sooner.
enum MarketingRetry {
    static let carriedKey = "marketing-retry-at"

    /// The farthest ahead a retry time is taken whatever `marketing_retry_after` says now: one set
    /// before a reload that shortened it (or by a worker of a longer setting) still holds.
    static let farthest: TimeInterval = 7 * 86_400

    /// When the message may go once more; nil when it carries no such time, or text that is no
    /// time within `longest` (`marketing_retry_after`, at least `farthest`) of `now` (not a
    /// worker's: a header set upstream must not hold the message for years).
    static func read(_ message: Message, now: Date, longest: Duration) -> Date? {
        guard let at = message.carried[carriedKey].flatMap(Date.init(epochMillisecondsText:)) else { return nil }
        return at.timeIntervalSince(now) <= max(longest.secondsDouble + 1, farthest) ? at : nil
    }

    static func write(_ at: Date?, _ message: inout Message) {
        message.carried[carriedKey] = at.map { String($0.epochMilliseconds(.up)) }
    }
}

/// A recipient who, Meta says, stopped marketing messages (`131050`): the step that keeps the
/// opt-out list adds them when the message's run is undone (`suppress`).
public enum MarketingStoppedKey: MessageValueKey {
    public typealias Value = (recipient: String, sender: String)
}
