import PipelineKit

/// The JSON Schema (2020-12) of event bodies (`outbound-worker schema --events`).
public enum EventSchema {
    public static var schema: JSONValue {
        let nullableString = JSONValue.object(["type": .array([.string("string"), .string("null")])])
        let instant = JSONValue.object(["type": .string("string"), "format": .string("date-time")])
        let error = JSONValue.object([
            "type": .string("object"),
            "required": .array(["step", "code", "message"].map(JSONValue.string)),
            "properties": .object([
                "step": .object(["type": .string("string"), "description": .string("the step that failed (or found the message expired)")]),
                "code": .object(["type": .array([.string("integer"), .string("string"), .string("null")]), "pattern": .string("^in_doubt$"),
                                 "description": .string("the Cloud API error code, when it gave one; \"in_doubt\" for a send in doubt dead-lettered (SPEC 13)")]),
                "message": .object(["type": .string("string")]),
            ]),
        ])
        let outbound = JSONValue.object([
            "title": .string("outbound.<status>: the final outcome of one message"),
            "type": .string("object"),
            "required": .array(["event", "internalId", "status", "to", "phoneNumberId", "attempt", "lane", "at", "pipeline", "worker", "metadata"].map(JSONValue.string)),
            "properties": .object([
                "event": .object(["type": .string("string"), "pattern": .string("^outbound\\.[a-z_]+$"), "description": .string("outbound.<status>")]),
                "internalId": .object(["type": .array([.string("string"), .string("null")]), "description": .string("null when the message was not JSON")]),
                "status": .object(["type": .string("string"), "pattern": .string("^[a-z_]+$"),
                                   "description": .string("sent, duplicate, failed, expired, retrying, or the outcome a step ended the message with (suppressed): such an event has no wamid")]),
                "wamid": .object(["type": .array([.string("string"), .string("null")]), "description": .string("the send's wamid; for a duplicate, the first send's when known")]),
                "to": .object(["type": .array([.string("string"), .string("null")]), "description": .string("the recipient as sent: + and digits")]),
                "phoneNumberId": .object(["type": .array([.string("string"), .string("null")]), "description": .string("the sender used, the default included")]),
                "attempt": .object(["type": .string("integer"), "minimum": .number(1)]),
                "lane": .object(["type": .array([.string("string"), .string("null")]), "description": .string("the source lane it came from (SPEC 14); null when the source has no lanes")]),
                "at": instant,
                "pipeline": .object(["type": .string("string")]),
                "worker": .object(["type": .string("string")]),
                "metadata": .object(["type": .array([.string("object"), .string("null")]), "description": .string("the message's own metadata, as it was")]),
                "error": error,
            ]),
            "allOf": .array([
                .object([
                    "if": .object(["properties": .object(["status": .object(["enum": .array(["failed", "expired"].map(JSONValue.string))])])]),
                    "then": .object(["required": .array([.string("error")])]),
                ]),
                .object([
                    "if": .object(["properties": .object(["status": .object(["enum": .array(["sent", "duplicate", "failed", "expired", "retrying"].map(JSONValue.string))])])]),
                    "then": .object(["required": .array([.string("wamid")])]),
                ]),
            ]),
        ])
        let delivery = JSONValue.object([
            "title": .string("delivery.<status>: a status Meta reported for a sent message"),
            "type": .string("object"),
            "required": .array(["event", "internalId", "wamid", "status", "recipient", "at"].map(JSONValue.string)),
            "properties": .object([
                "event": .object(["type": .string("string"), "pattern": .string("^delivery\\.")]),
                "internalId": .object(["type": .array([.string("string"), .string("null")]), "description": .string("from biz_opaque_callback_data, else the wamid mapping; null when unknown")]),
                "wamid": .object(["type": .string("string")]),
                "status": .object(["type": .string("string"), "description": .string("sent, delivered, read, failed, played, or what Meta sent")]),
                "recipient": nullableString,
                "at": instant,
                "errors": .object(["type": .string("array")]),
                "pricing": .object(["type": .string("object")]),
                "conversation": .object(["type": .string("object")]),
            ]),
        ])
        let webhook = JSONValue.object([
            "title": .string("webhook.<field>: any other change of a webhook (inbound messages, template updates…)"),
            "type": .string("object"),
            "required": .array(["event", "field", "value", "at"].map(JSONValue.string)),
            "properties": .object([
                "event": .object(["type": .string("string"), "pattern": .string("^webhook\\.")]),
                "field": .object(["type": .string("string")]),
                "value": .object(["type": .string("object")]),
                "at": instant,
            ]),
        ])
        let optOut = JSONValue.object([
            "title": .string("optout.added / optout.removed: an opt-out list changed (SPEC 16)"),
            "type": .string("object"),
            "required": .array(["event", "recipient", "sender", "source", "at"].map(JSONValue.string)),
            "properties": .object([
                "event": .object(["enum": .array(["optout.added", "optout.removed"].map(JSONValue.string))]),
                "recipient": .object(["type": .string("string"), "description": .string("+ and digits")]),
                "sender": .object(["type": .array([.string("string"), .string("null")]), "description": .string("the sender phone number id whose list changed; null: the list for all senders")]),
                "source": .object(["enum": .array(["keyword", "cli", "131050"].map(JSONValue.string))]),
                "at": instant,
            ]),
        ])
        return .object([
            "$schema": .string("https://json-schema.org/draft/2020-12/schema"),
            "$id": .string("https://outbound-worker/events.schema.json"),
            "title": .string("outbound-worker events (routing keys outbound.<status>, delivery.<status>, webhook.<field>, optout.<change>)"),
            "oneOf": .array([outbound, delivery, webhook, optOut]),
        ])
    }
}
