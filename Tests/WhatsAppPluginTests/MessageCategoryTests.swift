import PipelineKit
import Testing
import TestSupport
import ValidatePlugin
import WhatsAppPlugin

/// SPEC 4 `category`: a message's own, else its template's from `template_categories`, else
/// marketing for a template and service for every other type.
struct MessageCategoryTests {
    let validator = MessageValidator()

    func category(_ json: String, templates: String = "{}") throws -> MessageCategory {
        let configuration = CloudAPIConfiguration(settings: try settings("access_token: t\ntemplate_categories: \(templates)\n", schema: CloudAPISettings.schema))
        return configuration.category(of: try validator.validate(Message(body: Array(json.utf8))))
    }

    @Test func aMessageNamesItsOwnCategory() throws {
        #expect(try category(#"{"internalId":"a","to":"+5511987654321","type":"text","category":"marketing","text":{"body":"Hi"}}"#) == .marketing)
        #expect(try category(#"{"internalId":"a","to":"+5511987654321","type":"template","category":"utility","template":{"name":"sale","language":"en_US"}}"#,
                             templates: "{ sale: marketing }") == .utility)
    }

    @Test func aTemplateTakesItsListedCategoryElseMarketing() throws {
        let templates = "{ order_update: utility, login_code: authentication }"
        #expect(try category(#"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"order_update","language":"en_US"}}"#, templates: templates) == .utility)
        #expect(try category(#"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"login_code","language":"en_US"}}"#, templates: templates) == .authentication)
        #expect(try category(#"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"spring_sale","language":"en_US"}}"#, templates: templates) == .marketing)
    }

    @Test func everyOtherTypeIsService() throws {
        #expect(try category(#"{"internalId":"a","to":"+5511987654321","type":"text","text":{"body":"Hi"}}"#) == .service)
        #expect(try category(#"{"internalId":"a","to":"+5511987654321","type":"image","media":{"id":"1"}}"#) == .service)
    }

    @Test func aCategoryOutsideMetasIsRefused() {
        #expect(throws: TestFailure.self) { try settings("access_token: t\ntemplate_categories: { sale: promo }\n", schema: CloudAPISettings.schema) }
        #expect(throws: StepFailure.self) {
            try validator.validate(Message(body: Array(#"{"internalId":"a","to":"+5511987654321","type":"text","category":"promo","text":{"body":"Hi"}}"#.utf8)))
        }
    }
}
