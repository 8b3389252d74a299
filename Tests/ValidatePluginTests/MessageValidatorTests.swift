import Foundation
import PipelineKit
import Testing
import TestSupport
import ValidatePlugin

@Suite struct MessageValidatorTests {
    let validator = MessageValidator()

    private func reason(_ json: String) -> String? {
        do {
            _ = try validator.validate(Message(body: Array(json.utf8)))
            return nil
        } catch {
            #expect(error.kind == .invalid)
            return error.reason
        }
    }

    @Test func validTextIsNormalised() throws {
        let message = try validator.validate(Message(body: Array(#"{"internalId":"a.b:c-1_2","to":"+55 (11) 98765-4321","type":"text","text":{"body":"Hi","previewUrl":true},"unknown":1}"#.utf8)))
        #expect(message.to == "+5511987654321")
        #expect(message.content == .text(body: "Hi", previewURL: true))
    }

    @Test(arguments: [
        (#"{"to":"+5511987654321","type":"text","text":{"body":"Hi"}}"#, "internalId: required"),
        (#"{"internalId":"a b","to":"+5511987654321","type":"text","text":{"body":"Hi"}}"#, "internalId: only letters, digits and . _ : - are allowed"),
        (#"{"internalId":"","to":"+5511987654321","type":"text","text":{"body":"Hi"}}"#, "internalId: 0 characters, must be 1–128"),
        (#"{"internalId":7,"to":"+5511987654321","type":"text","text":{"body":"Hi"}}"#, "internalId: must be a string, found a number"),
        (#"{"internalId":"a","to":"1234","type":"text","text":{"body":"Hi"}}"#, "to: not an E.164 number (optional +, then 8–15 digits)"),
        (#"{"internalId":"a","to":"+55abc11987654","type":"text","text":{"body":"Hi"}}"#, "to: not an E.164 number"),
        (#"{"internalId":"a","to":"+5511987654321","type":"fax"}"#, "type: \"fax\" is not one of text, template"),
        (#"{"internalId":"a","to":"+5511987654321","type":"text"}"#, "text: required"),
        (#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":""}}"#, "text.body: must not be empty"),
        (#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"Hi","previewUrl":"yes"}}"#, "text.previewUrl: must be true or false"),
        (#"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"x"}}"#, "template.language: required"),
        // Meta refuses these (after a request, with a vaguer error): refused here, naming the field.
        (#"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"x","language":"en-US"}}"#, "template.language: \"en-US\" is not a language code"),
        (#"{"internalId":"a","to":"+5511987654321","type":"image","media":{"id":""}}"#, "media.id: must not be empty"),
        (#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"Hi"},"replyTo":""}"#, "replyTo: must not be empty"),
        (#"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"x","language":"en_US","components":{}}}"#, "template.components: must be an array"),
        (#"{"internalId":"a","to":"+5511987654321","type":"image","media":{}}"#, "media: give exactly one of id, link"),
        (#"{"internalId":"a","to":"+5511987654321","type":"image","media":{"id":"1","link":"https://x"}}"#, "media: give exactly one of id, link"),
        (#"{"internalId":"a","to":"+5511987654321","type":"audio","media":{"id":"1","caption":"c"}}"#, "media.caption: not allowed for audio"),
        (#"{"internalId":"a","to":"+5511987654321","type":"image","media":{"id":"1","filename":"f.pdf"}}"#, "media.filename: only for document"),
        (#"{"internalId":"a","to":"+5511987654321","type":"image","media":{"link":"ftp://x"}}"#, "media.link: must be an http(s) URL"),
        (#"{"internalId":"a","to":"+5511987654321","type":"location","location":{"latitude":91,"longitude":0}}"#, "location.latitude: must be a number in -90…90"),
        (#"{"internalId":"a","to":"+5511987654321","type":"contacts","contacts":[]}"#, "contacts: must be a non-empty array"),
        (#"{"internalId":"a","to":"+5511987654321","type":"contacts","contacts":[{"name":{}}]}"#, "contacts[0].name.formatted_name: required"),
        (#"{"internalId":"a","to":"+5511987654321","type":"reaction","reaction":{"messageId":"w"}}"#, "reaction.emoji: required"),
        (#"{"internalId":"a","to":"+5511987654321","type":"interactive","interactive":{"type":"button","body":{"text":"Q"},"action":{"buttons":[{"reply":{"id":"1","title":"This title is far too long"}}]}}}"#, "interactive.action.buttons[0].reply.title: 26 characters, at most 20"),
        (#"{"internalId":"a","to":"+5511987654321","type":"interactive","interactive":{"type":"button","body":{"text":"Q"},"action":{"buttons":[]}}}"#, "interactive.action.buttons: 0 buttons, must be 1–3"),
        (#"{"internalId":"a","to":"+5511987654321","type":"interactive","interactive":{"type":"list","body":{"text":"Q"},"action":{"button":"Pick","sections":[{"rows":[]}]}}}"#, "interactive.action.sections: 0 rows in all, must be 1–10"),
        (#"{"internalId":"a","to":"+5511987654321","type":"interactive","interactive":{"type":"cta_url","body":{"text":"Q"},"action":{"parameters":{"display_text":"Open"}}}}"#, "interactive.action.parameters.url: required"),
        (#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"Hi"},"metadata":"x"}"#, "metadata: must be an object"),
        (#"[1,2]"#, "body must be a JSON object, found an array"),
        (#"{"internalId":"#, "body is not valid JSON"),
    ])
    func eachRuleNamesItsField(json: String, expected: String) {
        let found = reason(json)
        #expect(found?.contains(expected) == true, "got: \(found ?? "valid")")
    }

    @Test func lengthLimitsCountCharacters() {
        let long = String(repeating: "é", count: 5000)
        #expect(reason(#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"\#(long)"}}"#)?.contains("text.body: 5000 characters, at most 4096") == true)
        let caption = String(repeating: "c", count: 1025)
        #expect(reason(#"{"internalId":"a","to":"+5511987654321","type":"image","media":{"id":"1","caption":"\#(caption)"}}"#)?.contains("media.caption: 1025 characters, at most 1024") == true)
    }

    /// A value quoted in a reason is cut by bytes: one character may hold any number of combining
    /// marks, and a type of "t" and 70,000 accents (one character) was quoted whole — 140 KB in
    /// `x-error`, more than a frame holds, so its dead letter was never published.
    @Test func aQuotedValueIsBoundedInBytesNotCharacters() {
        let oneCharacter = "t" + String(repeating: "\u{301}", count: 70_000)
        for json in [#"{"internalId":"a","to":"+5511987654321","type":"\#(oneCharacter)"}"#,
                     #"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"x"},"category":"\#(oneCharacter)","expiresAt":"\#(oneCharacter)"}"#,
                     #"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"n","language":"\#(oneCharacter)"}}"#] {
            let found = reason(json) ?? ""
            #expect(!found.isEmpty)
            #expect(found.utf8.count < 1_000, "\(found.utf8.count) bytes")
        }
        // Two characters, 140 KB: a language code is ASCII (it becomes a store key).
        let en = "en" + String(repeating: "\u{301}", count: 70_000)
        #expect(reason(#"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"n","language":"\#(en)"}}"#)?.contains("template.language") == true)
    }

    /// A URL's scheme is case-insensitive: an `HTTPS://` link was refused as no http(s) URL.
    @Test func anUpperCaseSchemeIsAnHTTPSLink() {
        #expect(reason(#"{"internalId":"a","to":"+5511987654321","type":"image","media":{"link":"HTTPS://example.com/a.png"}}"#) == nil)
        #expect(reason(#"{"internalId":"a","to":"+5511987654321","type":"image","media":{"link":"ftp://example.com/a.png"}}"#)?.contains("media.link: must be an http(s) URL") == true)
    }

    @Test func everyProblemIsListed() {
        let found = reason(#"{"internalId":"a b","to":"1","type":"text","text":{"body":""}}"#) ?? ""
        #expect(found.contains("internalId:"))
        #expect(found.contains("to:"))
        #expect(found.contains("text.body:"))
    }

    @Test func oversizedBodiesAreRefusedBeforeParsing() {
        let small = MessageValidator(maxBytes: 256)
        let body = Array(#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"\#(String(repeating: "x", count: 400))"}}"#.utf8)
        #expect(throws: StepFailure.self) { try small.validate(Message(body: body)) }
    }

    @Test func theDefaultLimitIsOneMebibyteAndLargeMetadataPasses() throws {
        let validator = MessageValidator()
        let metadata = String(repeating: "m", count: 200_000)
        let large = Array(#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"Hi"},"metadata":{"note":"\#(metadata)"}}"#.utf8)
        #expect(try validator.validate(Message(body: large)).internalID == "a", "a valid message with 200 KB of metadata is valid")
        let tooLarge = Array(#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"Hi"},"metadata":{"note":"\#(String(repeating: "m", count: 1 << 20))"}}"#.utf8)
        #expect(throws: StepFailure(.invalid, "body is \(tooLarge.count) bytes, at most 1048576")) { try validator.validate(Message(body: tooLarge)) }
    }

    /// A body of more than 100,000 JSON values is invalid, not parsed into memory whole: before,
    /// 16 MiB of `[0,0,…]` (8 million values) was parsed for each message in flight, before any step
    /// could refuse its size.
    @Test func aBodyOfMoreThanAHundredThousandValuesIsInvalid() throws {
        func body(_ values: Int) -> [UInt8] {
            Array((#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"Hi"},"metadata":{"n":["# + Array(repeating: "0", count: values - 8).joined(separator: ",") + "]}}").utf8)
        }
        #expect(Message(body: body(Message.maximumValues)).payload != nil, "100,000 values, the object itself counted, are fine")
        let many = Message(body: body(Message.maximumValues + 1))
        #expect(many.payload == nil)
        #expect(throws: StepFailure(.invalid, "body holds more than 100000 JSON values (one per 8 bytes beyond 100000)")) { try MessageValidator(maxBytes: 1 << 20).validate(many) }
        // A longer body may hold more, at 8 bytes a value or more (a 3 MB webhook of statuses holds
        // some 150,000 at about 20): 150,000 values of 10 bytes each.
        let long = Array((#"{"n":["# + Array(repeating: #""abcdefg""#, count: 150_000).joined(separator: ",") + "]}").utf8)
        #expect(Message(body: long).payload != nil)
    }

    @Test func nestingDeeperThanSixtyFourLevelsIsInvalid() throws {
        func nested(_ depth: Int) -> [UInt8] {
            Array((#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"Hi"},"metadata":{"deep":"# + String(repeating: "[", count: depth - 2) + String(repeating: "]", count: depth - 2) + "}}").utf8)
        }
        #expect(try MessageValidator().validate(Message(body: nested(64))).internalID == "a", "64 levels, the object itself counted, are fine")
        let deep = Message(body: nested(65))
        #expect(deep.payload == nil)
        #expect(throws: StepFailure(.invalid, "body nests objects and arrays deeper than 64 levels")) { try MessageValidator().validate(deep) }
        let brackets = Message(body: Array(#"{"internalId":"a","text":"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["}"#.utf8))
        #expect(brackets.payload != nil, "brackets inside strings do not count")
    }

    /// 1,000 malformed messages of many shapes: each is rejected with a reason or accepted, never a crash.
    @Test func randomMalformedInputsNeverCrash() {
        var generator = SeededGenerator(seed: 42)
        let fields = ["internalId", "to", "type", "text", "template", "media", "location", "contacts", "interactive", "reaction", "replyTo", "phoneNumberId", "metadata"]
        var rejected = 0
        for _ in 0..<1000 {
            var object: [String: JSONValue] = [:]
            for field in fields where Bool.random(using: &generator) {
                object[field] = randomValue(depth: 0, &generator)
            }
            if Bool.random(using: &generator) { object["type"] = .string(MessageValidator.types.randomElement(using: &generator) ?? "text") }
            var body = JSONValue.object(object).encodedBytes()
            if Int.random(in: 0..<10, using: &generator) == 0 { body = Array(body.prefix(Int.random(in: 0...body.count, using: &generator))) }
            if Int.random(in: 0..<20, using: &generator) == 0 { body = (0..<64).map { _ in UInt8.random(in: 0...255, using: &generator) } }
            do {
                _ = try validator.validate(Message(body: body))
            } catch {
                #expect(!error.reason.isEmpty)
                rejected += 1
            }
        }
        #expect(rejected > 900)
    }

    private func randomValue(depth: Int, _ generator: inout SeededGenerator) -> JSONValue {
        switch Int.random(in: 0..<(depth > 3 ? 5 : 7), using: &generator) {
        case 0: return .null
        case 1: return .bool(Bool.random(using: &generator))
        case 2: return .number(JSONNumber(Double(Int.random(in: -1_000_000...1_000_000, using: &generator)) / 7))
        case 3: return .string(String(repeating: ["a", "+", "é", "\u{0}", "9", " "].randomElement(using: &generator) ?? "a", count: Int.random(in: 0...5000, using: &generator)))
        case 4: return .string(["text", "+5511987654321", "", "en_US", "https://x"].randomElement(using: &generator) ?? "")
        case 5: return .array((0..<Int.random(in: 0...4, using: &generator)).map { _ in randomValue(depth: depth + 1, &generator) })
        default:
            let keys = ["body", "name", "language", "id", "link", "caption", "latitude", "type", "action", "buttons", "messageId", "emoji"]
            var object: [String: JSONValue] = [:]
            for key in keys where Int.random(in: 0..<3, using: &generator) == 0 { object[key] = randomValue(depth: depth + 1, &generator) }
            return .object(object)
        }
    }

    /// `interactive` is passed through in the Cloud API's shape (SPEC 4): kinds this validator has
    /// no rules for, and a single `product` without a body (Meta's is optional), go out as written.
    /// They were dead-lettered as invalid.
    @Test(arguments: [
        #"{"type":"product","action":{"catalog_id":"c1","product_retailer_id":"sku-1"}}"#,
        #"{"type":"catalog_message","body":{"text":"Our catalog"},"action":{"name":"catalog_message"}}"#,
        #"{"type":"carousel","body":{"text":"Pick"},"action":{"cards":[]}}"#,
    ])
    func interactiveKindsMetaJudgesArePassedThrough(interactive: String) throws {
        let message = try validator.validate(Message(body: Array(#"{"internalId":"a","to":"+5511987654321","type":"interactive","interactive":\#(interactive)}"#.utf8)))
        #expect(message.content == .interactive(try JSONValue(parsing: Array(interactive.utf8))))
    }
}
