import Foundation
import PipelineKit

/// When a marketing message that Meta declined (`131049`) may go once more, kept with the message
/// while it waits through the delay queues (`Message.carried`), so it never goes sooner.
enum MarketingRetry {
    static let carriedKey = "marketing-retry-at"

    static func read(_ message: Message) -> Date? {
        message.carried[carriedKey].flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1000) }
    }

    static func write(_ at: Date?, _ message: inout Message) {
        message.carried[carriedKey] = at.map { String(Int64(($0.timeIntervalSince1970 * 1000).rounded(.up))) }
    }
}

/// A recipient who, Meta says, stopped marketing messages (`131050`): the step that keeps the
/// opt-out list adds them when the message's run is undone (`suppress`).
public enum MarketingStoppedKey: MessageValueKey {
    public typealias Value = (recipient: String, sender: String)
}
