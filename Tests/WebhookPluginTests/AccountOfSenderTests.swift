@testable import AccountLimitsPlugin
import Foundation
import Logging
import PipelineKit
import RedisPlugin
import Testing
import WebhookPlugin
import WhatsAppPlugin

/// Meta's `business_capability_update` names the WhatsApp Business Account, not its phone numbers
/// (SPEC 15: "a webhook that carries a new limit updates it"): a portfolio that lists no `accounts`
/// finds its account through its senders, which every statuses webhook names with their account.
@Suite struct AccountOfSenderTests {
    let clock = ManualWallClock()
    let store = MemoryStore(clock: SystemWallClock())

    func post(_ body: String, _ step: AccountUpdatesStep) async throws {
        var message = Message(body: Array(body.utf8))
        message.values[WebhookBatchKey.self] = WebhookBatch(try JSONValue(parsing: message.body), receivedAt: clock.now())
        let logger = Logger(label: "test")
        _ = try await step.run(&message, StepContext(stepName: "account_updates", logger: logger, workerID: "w", clock: clock, flow: FlowControl(clock: clock, logger: logger)))
    }

    static let delivered = #"{"object":"whatsapp_business_account","entry":[{"id":"9001","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550001111","phone_number_id":"105512345"},"statuses":[{"id":"wamid.1","status":"delivered","timestamp":"1800000000","recipient_id":"5511987654321"}]}}]}]}"#
    static let tier2K = #"{"object":"whatsapp_business_account","entry":[{"id":"9001","time":1800000000,"changes":[{"field":"business_capability_update","value":{"max_daily_conversations_per_business":"TIER_2K"}}]}]}"#

    @Test func aLimitUpdateReachesAPortfolioWithoutAccountsThroughTheAccountItsSendersWereSeenWith() async throws {
        let step = AccountUpdatesStep(templates: TemplateStates(store: store), limits: AnnouncedLimits(store: store))
        let worker = AnnouncedLimits(store: store)
        let main = Portfolio(name: "main", senders: ["105512345", "105567890"], messagingLimit: 250)
        #expect(await worker.limit(of: main, at: clock.now()) == 250, "nothing seen: the configured limit")

        try await post(Self.delivered, step)
        #expect(try await store.read(AnnouncedLimits.key(sender: "105512345"))?.value == "9001", "the pair every worker reads")
        try await post(Self.tier2K, step)
        let later = clock.now().addingTimeInterval(61)
        #expect(await worker.limit(of: main, at: later) == 2000, "the update of the account its sender was seen with")

        let listed = Portfolio(name: "listed", senders: ["105512345"], messagingLimit: 250, accounts: ["9002"])
        #expect(await worker.limit(of: listed, at: later) == 250, "a portfolio's own `accounts` are the ones it follows")
        let other = Portfolio(name: "other", senders: ["105599999"], messagingLimit: 250)
        #expect(await worker.limit(of: other, at: later) == 250, "a sender never seen has no account")
    }

    /// The pair is written once, not on every webhook (a status webhook per message sent).
    @Test func thePairIsWrittenOnceAnHourNotPerWebhook() async throws {
        let step = AccountUpdatesStep(templates: TemplateStates(store: store), limits: AnnouncedLimits(store: store))
        try await post(Self.delivered, step)
        #expect(try await store.delete(AnnouncedLimits.key(sender: "105512345")), "written by the first webhook")
        try await post(Self.delivered, step)
        #expect(try await store.read(AnnouncedLimits.key(sender: "105512345")) == nil, "not written again within the hour")
        clock.advance(by: .seconds(3601))
        try await post(Self.delivered, step)
        #expect(try await store.read(AnnouncedLimits.key(sender: "105512345"))?.value == "9001", "written again after it")
    }

    /// With the store down, a statuses webhook still goes through (its statuses are published with
    /// Redis down, SPEC 10): the pair is tried again 10 s later, not on every webhook meanwhile.
    @Test func aStoreThatIsDownDoesNotFailTheWebhook() async throws {
        let step = AccountUpdatesStep(templates: TemplateStates(store: store), limits: AnnouncedLimits(store: store))
        store.setAvailable(false)
        try await post(Self.delivered, step)
        store.setAvailable(true)
        try await post(Self.delivered, step)
        #expect(try await store.read(AnnouncedLimits.key(sender: "105512345")) == nil, "not tried again at once")
        clock.advance(by: .seconds(11))
        try await post(Self.delivered, step)
        #expect(try await store.read(AnnouncedLimits.key(sender: "105512345"))?.value == "9001", "written 10 s later")
    }
}
