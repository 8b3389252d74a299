import Foundation
import PipelineKit

/// The send slot `dispatch` reserved for a message while it waits for it, kept with the
/// message when it waits through the source (`Message.carried`), so its place is not lost.
enum SendSlot {
    static let carriedKey = "send-slot"

    static func read(_ message: Message) -> Date? {
        message.carried[carriedKey].flatMap(Double.init).map { Date(timeIntervalSince1970: $0 / 1000) }
    }

    static func write(_ slot: Date?, _ message: inout Message) {
        message.carried[carriedKey] = slot.map { String(Int64(($0.timeIntervalSince1970 * 1000).rounded())) }
    }
}
