import Foundation
import PipelineKit

/// The event of a message's final outcome (SPEC 9): `outbound.<status>` with what is known of
/// the message — never a token, never the message body (only its `metadata`).
enum OutboundEvent {
    /// The status a decision reports, nil when it reports none (a requeue is not final): one of
    /// `EventsSettings.statuses`, `retrying`, or the label a step ended the message with.
    static func status(of decision: Decision, includeRetries: Bool) -> String? {
        switch decision {
        case .ack(.completed): "sent"
        case .ack(.finished(_, let label, _)): label.rawValue
        case .ack(.dropped): "failed"
        case .deadLetter(let failure): failure.expired ? "expired" : "failed"
        case .retry: includeRetries ? "retrying" : nil
        case .requeue: nil
        }
    }

    static func body(status: String, outcome: Outcome, pipeline: String, worker: String, at: Date) -> JSONValue {
        let message = outcome.message
        let reported = message.reported
        var body: [String: JSONValue] = [
            "event": .string("outbound.\(status)"),
            "internalId": message.internalID.map(JSONValue.string) ?? .null,
            "status": .string(status),
            "wamid": message.values[DeliveryReceiptKey.self].map(JSONValue.string) ?? .null,
            "to": reported["to"] ?? .null,
            "phoneNumberId": reported["phoneNumberId"] ?? .null,
            "attempt": .number(JSONNumber(message.attempt)),
            "lane": message.lane.map { .string($0.name) } ?? .null,
            "at": .string(UTCTimestamp.format(at)),
            "pipeline": .string(pipeline),
            "worker": .string(worker),
            "metadata": message.payload?["metadata"].flatMap { $0.objectValue != nil ? $0 : nil } ?? .null,
        ]
        // A send in doubt settled by a delivery status (SPEC 13).
        if let resolvedBy = reported["resolvedBy"] { body["resolvedBy"] = resolvedBy }
        // A step's own outcome (`suppressed`): nothing was sent, so no wamid (SPEC 9).
        if case .ack(.finished(_, let label, _)) = outcome.decision, label != .duplicate { body["wamid"] = nil }
        if let failure = outcome.decision.failure, status != "sent", status != "duplicate" {
            body["error"] = .object([
                "step": .string(failure.step),
                "code": failure.code.map { .number(JSONNumber($0)) } ?? failure.symbolicCode.map(JSONValue.string) ?? .null,
                "message": .string(failure.reason.prefix(utf8Bytes: 2000)),
            ])
        }
        return .object(body)
    }
}
