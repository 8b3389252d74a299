@testable import AccountLimitsPlugin
import Foundation
import Logging
import PipelineKit
import RedisPlugin
import Testing
import TestSupport
import ValidatePlugin
import WebhookPlugin
@testable import WhatsAppPlugin

/// A template's name is its WhatsApp Business Account's alone, but SPEC 15 keys its state by name
/// and language: one tenant's `DISABLED` `sale` dead-lettered every tenant's `sale` (en_US) for 30
/// days, a `PAUSED` one held them 3 h. With `sender_accounts`, a listed sender reads and writes its
/// account's states only; a sender listed nowhere shares them by name and language, as before.
@Suite struct TemplatesOfAccountsTests {
    let clock = ManualWallClock()
    let store: MemoryStore
    let log = StandInLog()
    let context: StepContext
    let step: DispatchStep

    /// Senders 1001 and 1002 are of accounts 9001 and 9002; 1003 is listed nowhere.
    init() throws {
        store = MemoryStore(clock: clock)
        let logger = Logger(label: "test")
        context = StepContext(stepName: "dispatch", logger: logger, workerID: "w", clock: clock, flow: FlowControl(clock: clock, logger: logger))
        let configuration = CloudAPIConfiguration(settings: try settings("""
            access_token: t
            pacing: false
            sender_accounts: { "1001": "9001", "1002": "9002" }
            """, schema: CloudAPISettings.schema))
        step = DispatchStep(client: StandInCloudAPI(configuration: configuration, slotStore: nil, clock: clock, log: log),
                            limits: AccountLimits(templates: TemplateStates(store: store)))
    }

    /// `dispatch` run for a message of `template` (en_US) from `sender`.
    func send(_ template: String, from sender: String) async throws -> StepOutcome {
        let id = UUID().uuidString
        var message = Message(body: Array(#"{"internalId":"\#(id)","to":"+5511987654321","phoneNumberId":"\#(sender)","type":"template","template":{"name":"\#(template)","language":"en_US"}}"#.utf8))
        _ = try await ValidateStep(validator: MessageValidator()).run(&message, context)
        _ = try await TransformStep().run(&message, context)
        return try await step.run(&message, context)
    }

    /// Whether a message of `template` from `sender` waits for its template's pause.
    func waits(_ template: String, from sender: String) async throws -> Bool {
        guard case .wait(let wait) = try await send(template, from: sender) else { return false }
        return wait.reason == .templatePaused
    }

    /// The statuses pipeline's `account_updates` given Meta's update of `template` (en_US) of `account`.
    func update(_ event: String, _ template: String, account: String) async throws {
        let body = #"{"object":"whatsapp_business_account","entry":[{"id":"\#(account)","time":\#(Int(clock.now().timeIntervalSince1970)),"changes":[{"field":"message_template_status_update","value":{"event":"\#(event)","message_template_name":"\#(template)","message_template_language":"en_US"}}]}]}"#
        var message = Message(body: Array(body.utf8))
        message.values[WebhookBatchKey.self] = WebhookBatch(try JSONValue(parsing: message.body), receivedAt: clock.now())
        let updates = AccountUpdatesStep(templates: TemplateStates(store: store), limits: AnnouncedLimits(store: store))
        _ = try await updates.run(&message, StepContext(stepName: "account_updates", logger: context.logger, workerID: "s", clock: clock, flow: context.flow))
        clock.advance(by: .seconds(2))  // past what a worker trusts of its last read
    }

    @Test func anUpdateHoldsTheSendersOfItsAccountAndThoseListedNowhere() async throws {
        try await update("DISABLED", "sale", account: "9001")
        #expect(try await send("sale", from: "1002") == .next, "the other account's template of the same name is sent")
        let failure = await #expect(throws: StepFailure.self, "the account's own is dead-lettered") { try await send("sale", from: "1001") }
        #expect(failure?.code == 132016 && failure?.reason.contains("sale (en_US) of account 9001") == true, "\(String(describing: failure))")
        await #expect(throws: StepFailure.self, "a sender listed nowhere follows every update, as SPEC 15 says") { try await send("sale", from: "1003") }

        try await update("PAUSED", "promo", account: "9002")
        #expect(try await waits("promo", from: "1002"))
        #expect(try await waits("promo", from: "1003"))
        #expect(try await send("promo", from: "1001") == .next)
        try await update("APPROVED", "promo", account: "9002")
        #expect(try await send("promo", from: "1002") == .next, "the approval ends the account's pause")
        #expect(try await send("promo", from: "1003") == .next, "and the shared one")
        #expect(log.received.map(\.sender) == ["1002", "1001", "1002", "1003"], "no request for what was held")
    }

    @Test func aRefusalHoldsOnlyTheSendersAccount() async throws {
        log.script([StandInCloudAPI.Answer(status: 400, errorCode: 132015, errorMessage: "Template is paused")])
        #expect(try await waits("sale", from: "1001"))
        #expect(try await store.read("template:9001:sale:en_US")?.value.hasPrefix("paused:") == true)
        #expect(try await store.read("template:sale:en_US") == nil, "not the key every unlisted sender reads")
        #expect(try await waits("sale", from: "1001"), "its later messages wait without a request")
        #expect(try await send("sale", from: "1002") == .next)
        #expect(try await send("sale", from: "1003") == .next)

        log.script([StandInCloudAPI.Answer(status: 400, errorCode: 132016, errorMessage: "Template is disabled")])
        let failure = await #expect(throws: StepFailure.self) { try await send("promo", from: "1002") }
        #expect(failure?.reason.hasPrefix("template disabled: promo (en_US) of account 9002: ") == true, "\(String(describing: failure))")
        #expect(try await store.read("template:9002:promo:en_US")?.value == "disabled")
        #expect(try await send("promo", from: "1001") == .next)

        log.script([StandInCloudAPI.Answer(status: 400, errorCode: 132015, errorMessage: "Template is paused")])
        #expect(try await waits("welcome", from: "1003"), "a sender listed nowhere learns it under the shared key")
        #expect(try await store.read("template:welcome:en_US")?.value.hasPrefix("paused:") == true)
        #expect(try await send("welcome", from: "1001") == .next, "which no listed sender reads")
        #expect(log.received.map(\.sender) == ["1001", "1002", "1003", "1002", "1001", "1003", "1001"])
    }
}
