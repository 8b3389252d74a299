@testable import AccountLimitsPlugin
import Foundation
import PipelineKit
import Testing
import WebhookPlugin

/// A template pause without an update ends 3 h (`FIRST_PAUSE`) or 6 h (`SECOND_PAUSE`) after the
/// update's time (SPEC 15), the entry's `time` — not when the webhook arrived, which Meta may re-send days later.
@Suite struct TemplateUpdateTests {
    static func batch(time: String, title: String, receivedAt: Date) throws -> WebhookBatch {
        let body = #"{"object":"whatsapp_business_account","entry":[{"id":"1","time":\#(time),"changes":[{"field":"message_template_status_update","value":{"event":"PAUSED","message_template_id":1,"message_template_name":"promo","message_template_language":"en_US","reason":"NONE","other_info":{"title":"\#(title)","description":"quality"}}}]}]}"#
        return WebhookBatch(try JSONValue(parsing: Array(body.utf8)), receivedAt: receivedAt)
    }

    @Test func aPauseEndsCountedFromTheUpdatesTime() throws {
        let receivedAt = Date(timeIntervalSince1970: 1_800_000_000)
        let madeAt = receivedAt.addingTimeInterval(-2 * 3600)
        for (title, hours) in [("FIRST_PAUSE", 3.0), ("SECOND_PAUSE", 6.0)] {
            let batch = try Self.batch(time: String(Int(madeAt.timeIntervalSince1970)), title: title, receivedAt: receivedAt)
            let change = try #require(batch.changes.first)
            #expect(change.time == madeAt)
            let update = try #require(TemplateUpdate(change, receivedAt: receivedAt))
            #expect(update.event == "PAUSED" && update.name == "promo" && update.language == "en_US")
            #expect(update.pauseEnds == madeAt.addingTimeInterval(hours * 3600), "\(title): from the update's time, 2 h before it arrived")
        }
    }

    @Test func withoutATimeOrWithOneAheadTheArrivalCounts() throws {
        let receivedAt = Date(timeIntervalSince1970: 1_800_000_000)
        for time in ["\"soon\"", "1800003600"] {
            let batch = try Self.batch(time: time, title: "FIRST_PAUSE", receivedAt: receivedAt)
            let update = try #require(batch.changes.first.flatMap { TemplateUpdate($0, receivedAt: receivedAt) })
            #expect(update.pauseEnds == receivedAt.addingTimeInterval(3 * 3600), "time \(time)")
        }
    }
}
