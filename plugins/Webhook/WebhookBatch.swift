import Foundation
import Metrics
import PipelineKit

/// What one webhook POST carries, parsed: the statuses, and the other changes by field.
public struct WebhookBatch: Sendable, Equatable {
    /// One `entry[].changes[].value.statuses[]` item.
    public struct Status: Sendable, Equatable {
        public var wamid: String
        public var status: String
        public var timestamp: Date?
        public var recipient: String?
        public var callbackData: String?
        public var errors: JSONValue?
        public var pricing: JSONValue?
        public var conversation: JSONValue?
        /// Filled by `correlate_statuses`.
        public var internalID: String?
        /// The traced send's `traceparent` (from the wamid mapping), filled by `correlate_statuses` when tracing is on.
        public var sendTrace: String?
        /// The trace its event goes on with (`TraceHeaders`), filled by `status_events` when tracing is on.
        public var eventTrace: [String: String] = [:]
        /// False once `order_statuses` found it already published or behind a later status.
        public var publish = true
    }

    /// Any other change: `webhook.<field>`.
    public struct Change: Sendable, Equatable {
        public var field: String
        public var value: JSONValue
        /// The WhatsApp Business Account the change concerns (the entry's `id`).
        public var account: String?
        /// When Meta made the change (the entry's `time`), if it says; a webhook re-sent days later keeps it.
        public var time: Date? = nil
    }

    public var statuses: [Status] = []
    public var changes: [Change] = []
    /// The WhatsApp Business Account of each phone number id the batch concerns (`entry.id` and
    /// the change's `metadata.phone_number_id`).
    public var accountsOfSenders: [String: String] = [:]
    public var receivedAt: Date

    /// Parses a webhook body. Status items without `id` or `status` are dropped (and counted);
    /// everything else is kept.
    public init(_ payload: JSONValue, receivedAt: Date) {
        self.receivedAt = receivedAt
        for entry in payload["entry"]?.arrayValue ?? [] {
            let account = entry["id"]?.stringValue
            let time = entry["time"].flatMap(Self.instant)
            for change in entry["changes"]?.arrayValue ?? [] {
                let field = change["field"]?.stringValue ?? "unknown"
                guard case .object(var value)? = change["value"] else {
                    changes.append(Change(field: field, value: change["value"] ?? .null, account: account, time: time))
                    continue
                }
                if let account, let sender = value["metadata"]?["phone_number_id"]?.stringValue, !sender.isEmpty { accountsOfSenders[sender] = account }
                if let items = value.removeValue(forKey: "statuses")?.arrayValue {
                    for item in items {
                        guard let wamid = item["id"]?.stringValue, !wamid.isEmpty, let status = item["status"]?.stringValue, !status.isEmpty else {
                            Self.dropped.increment()
                            continue
                        }
                        statuses.append(Status(wamid: wamid, status: status, timestamp: item["timestamp"].flatMap(Self.instant),
                                               recipient: item["recipient_id"]?.stringValue, callbackData: item["biz_opaque_callback_data"]?.stringValue,
                                               errors: item["errors"], pricing: item["pricing"], conversation: item["conversation"]))
                    }
                    // A change with statuses and other content (inbound messages) gives both kinds of event.
                    let rest = value.filter { $0.key != "messaging_product" && $0.key != "metadata" }
                    if !rest.isEmpty { changes.append(Change(field: field, value: .object(value), account: account, time: time)) }
                } else {
                    changes.append(Change(field: field, value: .object(value), account: account, time: time))
                }
            }
        }
    }

    static let dropped = Counter(label: "outbound_webhook_statuses_dropped_total", dimensions: [("reason", "missing_id_or_status")])

    /// Meta's timestamps: seconds since 1970, as a string (or a number). Nil for anything else,
    /// `nan` and values no date is written with (`UTCTimestamp.range`) among them: the status then
    /// takes the time it was received.
    static func instant(_ value: JSONValue) -> Date? {
        guard let seconds = value.stringValue.flatMap(Double.init) ?? value.numberValue, UTCTimestamp.range.contains(seconds) else { return nil }
        return Date(timeIntervalSince1970: seconds)
    }

    /// The events to publish: `delivery.<status>` for each status kept, `webhook.<field>` for each other change.
    public var events: [PreparedEvent] {
        var events: [PreparedEvent] = []
        for status in statuses where status.publish {
            var body: [String: JSONValue] = [
                "event": .string("delivery.\(status.status)"),
                "internalId": status.internalID.map(JSONValue.string) ?? .null,
                "wamid": .string(status.wamid),
                "status": .string(status.status),
                "recipient": status.recipient.map(JSONValue.string) ?? .null,
                "at": .string(UTCTimestamp.format(status.timestamp ?? receivedAt)),
            ]
            if let errors = status.errors { body["errors"] = errors }
            if let pricing = status.pricing { body["pricing"] = pricing }
            if let conversation = status.conversation { body["conversation"] = conversation }
            events.append(PreparedEvent(routingKey: "delivery.\(status.status)", body: .object(body), traceHeaders: status.eventTrace))
        }
        for change in changes {
            events.append(PreparedEvent(routingKey: "webhook.\(change.field)", body: .object([
                "event": .string("webhook.\(change.field)"), "field": .string(change.field), "value": change.value, "at": .string(UTCTimestamp.format(receivedAt)),
            ])))
        }
        return events
    }
}

/// Where `webhook_changes` leaves the parsed batch for the later status steps.
public enum WebhookBatchKey: MessageValueKey {
    public typealias Value = WebhookBatch
}

extension StepValue {
    /// The parsed webhook body `webhook_changes` leaves for the status steps.
    public static let webhookBatch = StepValue(WebhookBatchKey.self, "webhook_batch")
}
