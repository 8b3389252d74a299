import Foundation
import PipelineKit
import Testing
import WebhookPlugin

/// Reading a signed webhook's statuses: what Meta sends is input, its timestamps too.
@Suite struct WebhookBatchTests {
    @Test func aTimestampNoDateIsWrittenWithIsTheTimeTheStatusWasReceived() throws {
        let timestamps = [#""1796000000""#, "1796000000", #""nan""#, #""1e300""#, "1e300", #""-1e13""#, #""soon""#]
        let statuses = timestamps.enumerated().map { index, timestamp in
            #"{"id":"wamid.\#(index)","status":"delivered","timestamp":\#(timestamp),"recipient_id":"5511987654321"}"#
        }
        let body = #"{"object":"whatsapp_business_account","entry":[{"id":"9001","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","statuses":[\#(statuses.joined(separator: ","))]}}]}]}"#
        let receivedAt = Date(timeIntervalSince1970: 1_800_000_000)
        let batch = WebhookBatch(try JSONValue(parsing: Array(body.utf8)), receivedAt: receivedAt)
        let sent = Date(timeIntervalSince1970: 1_796_000_000)
        #expect(batch.statuses.map(\.timestamp) == [sent, sent, nil, nil, nil, nil, nil])
        #expect(batch.events.map { $0.body["at"]?.stringValue } == [
            "2026-11-30T00:53:20.000Z", "2026-11-30T00:53:20.000Z",
            "2027-01-15T08:00:00.000Z", "2027-01-15T08:00:00.000Z", "2027-01-15T08:00:00.000Z", "2027-01-15T08:00:00.000Z", "2027-01-15T08:00:00.000Z",
        ])
    }
}
