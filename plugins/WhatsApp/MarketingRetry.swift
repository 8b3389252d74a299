import Foundation
import PipelineKit

/// When a marketing message that Meta declined (`131049`) may go once more, kept with the message
/// while it waits through the delay queues (`Message.carried`), so it never goes sooner.
enum MarketingRetry {
    static let carriedKey = "marketing-retry-at"

    /// When the message may go once more; nil when it carries no such time, or text that is no
    /// time within `longest` (`marketing_retry_after`) of `now` (not this worker's: a header set
    /// upstream must not hold the message).
    static func read(_ message: Message, now: Date, longest: Duration) -> Date? {
        guard let at = message.carried[carriedKey].flatMap(Date.init(epochMillisecondsText:)) else { return nil }
        return at.timeIntervalSince(now) <= longest.secondsDouble + 1 ? at : nil
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
