import Foundation
import Logging
import PipelineKit
import Testing
import ValidatePlugin
import WhatsAppPlugin

/// One input per message type → the exact Cloud API body (keys sorted).
@Suite struct TransformGoldenTests {
    private static let context = StepContext(stepName: "transform", logger: Logger(label: "test"), workerID: "w", clock: SystemWallClock(), flow: FlowControl(logger: Logger(label: "test")))

    private func transform(_ json: String) async throws -> String {
        var message = try await validated(json)
        _ = try await TransformStep().run(&message, Self.context)
        let request = try #require(message.values[PreparedRequestKey.self])
        return String(decoding: request.body, as: UTF8.self)
    }

    private let to = #""internalId":"g1","to":"+55 11 98765-4321""#

    @Test func text() async throws {
        #expect(try await transform(#"{\#(to),"type":"text","text":{"body":"Hi"}}"#)
            == #"{"biz_opaque_callback_data":"g1","messaging_product":"whatsapp","recipient_type":"individual","text":{"body":"Hi","preview_url":false},"to":"+5511987654321","type":"text"}"#)
    }

    @Test func textReplyWithPreview() async throws {
        #expect(try await transform(#"{\#(to),"type":"text","text":{"body":"See https://x.io","previewUrl":true},"replyTo":"wamid.R"}"#)
            == #"{"biz_opaque_callback_data":"g1","context":{"message_id":"wamid.R"},"messaging_product":"whatsapp","recipient_type":"individual","text":{"body":"See https://x.io","preview_url":true},"to":"+5511987654321","type":"text"}"#)
    }

    @Test func template() async throws {
        #expect(try await transform(#"{\#(to),"type":"template","template":{"name":"order","language":"pt_BR","components":[{"type":"header","parameters":[{"type":"image","image":{"link":"https://x/a.png"}}]},{"type":"body","parameters":[{"type":"text","text":"42"}]},{"type":"button","sub_type":"url","index":"0","parameters":[{"type":"text","text":"abc"}]}]}}"#)
            == #"{"biz_opaque_callback_data":"g1","messaging_product":"whatsapp","recipient_type":"individual","template":{"components":[{"parameters":[{"image":{"link":"https://x/a.png"},"type":"image"}],"type":"header"},{"parameters":[{"text":"42","type":"text"}],"type":"body"},{"index":"0","parameters":[{"text":"abc","type":"text"}],"sub_type":"url","type":"button"}],"language":{"code":"pt_BR"},"name":"order"},"to":"+5511987654321","type":"template"}"#)
    }

    @Test func image() async throws {
        #expect(try await transform(#"{\#(to),"type":"image","media":{"link":"https://x/a.png","caption":"Receipt"}}"#)
            == #"{"biz_opaque_callback_data":"g1","image":{"caption":"Receipt","link":"https://x/a.png"},"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"image"}"#)
    }

    @Test func video() async throws {
        #expect(try await transform(#"{\#(to),"type":"video","media":{"id":"123","caption":"How to"}}"#)
            == #"{"biz_opaque_callback_data":"g1","messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"video","video":{"caption":"How to","id":"123"}}"#)
    }

    @Test func audio() async throws {
        #expect(try await transform(#"{\#(to),"type":"audio","media":{"id":"456"}}"#)
            == #"{"audio":{"id":"456"},"biz_opaque_callback_data":"g1","messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"audio"}"#)
    }

    @Test func document() async throws {
        #expect(try await transform(#"{\#(to),"type":"document","media":{"id":"789","filename":"invoice.pdf","caption":"Invoice"}}"#)
            == #"{"biz_opaque_callback_data":"g1","document":{"caption":"Invoice","filename":"invoice.pdf","id":"789"},"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"document"}"#)
    }

    @Test func sticker() async throws {
        #expect(try await transform(#"{\#(to),"type":"sticker","media":{"id":"321"}}"#)
            == #"{"biz_opaque_callback_data":"g1","messaging_product":"whatsapp","recipient_type":"individual","sticker":{"id":"321"},"to":"+5511987654321","type":"sticker"}"#)
    }

    @Test func location() async throws {
        #expect(try await transform(#"{\#(to),"type":"location","location":{"latitude":-23.5505,"longitude":-46.6333,"name":"Store","address":"Av. Paulista"}}"#)
            == #"{"biz_opaque_callback_data":"g1","location":{"address":"Av. Paulista","latitude":-23.5505,"longitude":-46.6333,"name":"Store"},"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"location"}"#)
    }

    @Test func contacts() async throws {
        #expect(try await transform(#"{\#(to),"type":"contacts","contacts":[{"name":{"formatted_name":"Ana","first_name":"Ana"},"phones":[{"phone":"+5511900000000","type":"WORK"}]}]}"#)
            == #"{"biz_opaque_callback_data":"g1","contacts":[{"name":{"first_name":"Ana","formatted_name":"Ana"},"phones":[{"phone":"+5511900000000","type":"WORK"}]}],"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"contacts"}"#)
    }

    @Test func interactiveButtons() async throws {
        #expect(try await transform(#"{\#(to),"type":"interactive","interactive":{"type":"button","body":{"text":"OK?"},"action":{"buttons":[{"type":"reply","reply":{"id":"y","title":"Yes"}}]}}}"#)
            == #"{"biz_opaque_callback_data":"g1","interactive":{"action":{"buttons":[{"reply":{"id":"y","title":"Yes"},"type":"reply"}]},"body":{"text":"OK?"},"type":"button"},"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"interactive"}"#)
    }

    @Test func interactiveList() async throws {
        #expect(try await transform(#"{\#(to),"type":"interactive","interactive":{"type":"list","body":{"text":"Pick"},"action":{"button":"Options","sections":[{"title":"S","rows":[{"id":"1","title":"One","description":"d"}]}]}}}"#)
            == #"{"biz_opaque_callback_data":"g1","interactive":{"action":{"button":"Options","sections":[{"rows":[{"description":"d","id":"1","title":"One"}],"title":"S"}]},"body":{"text":"Pick"},"type":"list"},"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"interactive"}"#)
    }

    @Test func interactiveCallToAction() async throws {
        #expect(try await transform(#"{\#(to),"type":"interactive","interactive":{"type":"cta_url","body":{"text":"Track"},"action":{"name":"cta_url","parameters":{"display_text":"Open","url":"https://x/t"}}}}"#)
            == #"{"biz_opaque_callback_data":"g1","interactive":{"action":{"name":"cta_url","parameters":{"display_text":"Open","url":"https://x/t"}},"body":{"text":"Track"},"type":"cta_url"},"messaging_product":"whatsapp","recipient_type":"individual","to":"+5511987654321","type":"interactive"}"#)
    }

    @Test func reaction() async throws {
        #expect(try await transform(#"{\#(to),"type":"reaction","reaction":{"messageId":"wamid.M","emoji":"👍"}}"#)
            == #"{"biz_opaque_callback_data":"g1","messaging_product":"whatsapp","reaction":{"emoji":"👍","message_id":"wamid.M"},"recipient_type":"individual","to":"+5511987654321","type":"reaction"}"#)
    }

    private func validated(_ json: String) async throws -> Message {
        var message = Message(body: Array(json.utf8))
        _ = try await ValidateStep(validator: MessageValidator()).run(&message, Self.context)
        return message
    }

    @Test func senderOverrideTravelsWithTheRequest() async throws {
        var message = try await validated(#"{\#(to),"type":"text","text":{"body":"Hi"},"phoneNumberId":"555"}"#)
        _ = try await TransformStep().run(&message, Self.context)
        #expect(message.values[PreparedRequestKey.self]?.phoneNumberID == "555")
    }

    @Test func withoutValidationThereIsNothingToTransform() async throws {
        var message = Message(body: Array(#"{\#(to),"type":"text","text":{"body":"Hi"}}"#.utf8))
        await #expect(throws: StepFailure.self) { try await TransformStep().run(&message, Self.context) }
        #expect(message.values[PreparedRequestKey.self] == nil)
    }

    @Test func passThroughNumbersArriveExactlyAsWritten() async throws {
        let body = try await transform(#"{\#(to),"type":"interactive","interactive":{"type":"button","body":{"text":"Pick"},"action":{"buttons":[{"type":"reply","reply":{"id":"a","title":"A"}}]},"n":9007199254740993,"id20":12345678901234567890,"big":123456789012345678901234567890,"neg":-9223372036854775809,"f":0.1}}"#)
        #expect(body.contains(#""n":9007199254740993"#))
        #expect(body.contains(#""id20":12345678901234567890"#))
        #expect(body.contains(#""big":123456789012345678901234567890"#))
        #expect(body.contains(#""neg":-9223372036854775809"#))
        #expect(body.contains(#""f":0.1"#))
    }
}
