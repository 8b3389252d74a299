import Foundation
import PipelineKit
import Testing
@testable import WhatsAppPlugin

/// What `dispatch` reads back from the headers a message carries (`x-carried-…`): its own writing,
/// never text set upstream that would trap or hold the message for ever.
@Suite struct CarriedTimesTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    func carrying(_ key: String, _ value: String) -> Message {
        Message(body: [], carried: [key: value])
    }

    @Test func aSlotWrittenReadsBack() {
        var message = Message(body: [])
        SendSlot.write(now.addingTimeInterval(0.25), &message)
        #expect(SendSlot.read(message, now: now) == now.addingTimeInterval(0.25))
        #expect(SendSlot.read(carrying(SendSlot.carriedKey, "1799999990000"), now: now) == now.addingTimeInterval(-10), "a past slot reads (it counts as unused)")
    }

    /// Before, `1e300` or `inf` became the reserved slot, and the worker trapped turning it into a
    /// header or a wait; a slot years ahead held the message until then.
    @Test(arguments: ["1e300", "inf", "nan", "abc", "253402300799999", "1800086400001"])
    func aSlotThatIsNoTimeOrTooFarAheadIsNone(text: String) {
        #expect(SendSlot.read(carrying(SendSlot.carriedKey, text), now: now) == nil)
    }

    @Test func aMarketingRetryWrittenReadsBack() {
        var message = Message(body: [])
        MarketingRetry.write(now.addingTimeInterval(86_400), &message)
        #expect(MarketingRetry.read(message, now: now, longest: .seconds(86_400)) == now.addingTimeInterval(86_400))
    }

    /// A retry set before a reload shortened `marketing_retry_after` (or by a worker of a longer
    /// setting) still holds, up to a week ahead.
    @Test func aRetrySetUnderALongerSettingStillHolds() {
        let at = now.addingTimeInterval(20 * 3600)
        #expect(MarketingRetry.read(carrying(MarketingRetry.carriedKey, String(at.epochMilliseconds())), now: now, longest: .seconds(3600)) == at)
    }

    /// Before, `inf` became a wait that never ended, which trapped when the message left for the delay queues.
    @Test(arguments: ["1e300", "inf", "nan", "abc", "1800604801000"])
    func aMarketingRetryThatIsNoTimeOrBeyondItsWaitIsNone(text: String) {
        #expect(MarketingRetry.read(carrying(MarketingRetry.carriedKey, text), now: now, longest: .seconds(86_400)) == nil)
    }
}
