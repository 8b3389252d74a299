import Foundation
import PipelineKit
import RedisPlugin
import Testing
import TestSupport
@testable import WhatsAppPlugin

/// Meta's `business_capability_update` limits over a portfolio's configured one.
@Suite struct AnnouncedLimitsTests {
    let now = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func metasWordsAndNumbersAreLimits() {
        #expect(AnnouncedLimits.parse(.string("TIER_2K")) == 2000)
        #expect(AnnouncedLimits.parse(.string("TIER_100K")) == 100_000)
        #expect(AnnouncedLimits.parse(.string("TIER_UNLIMITED")) == -1)
        #expect(AnnouncedLimits.parse(.number(JSONNumber(250))) == 250)
        #expect(AnnouncedLimits.parse(.string("TIER_SOMETHING")) == nil)
        #expect(AnnouncedLimits.parse(nil) == nil)
    }

    /// A number no `Int` holds is no limit, not a crash of the worker (Meta's webhook is input).
    @Test func aNumberThatIsNoWholeIntIsNoLimit() {
        #expect(AnnouncedLimits.parse(.number(JSONNumber(text: "1e300"))) == nil)
        #expect(AnnouncedLimits.parse(.number(JSONNumber(text: String(repeating: "9", count: 400)))) == nil)
        #expect(AnnouncedLimits.parse(.number(JSONNumber(text: "-1e300"))) == nil)
        #expect(AnnouncedLimits.parse(.number(JSONNumber(text: "2.5"))) == nil)
        #expect(AnnouncedLimits.parse(.number(JSONNumber(text: "1e3"))) == 1000)
        #expect(AnnouncedLimits.parse(.number(JSONNumber(text: "-1"))) == -1)
    }

    /// Only -1 means unlimited: another negative number (a garbled update, a hostile one) must
    /// not lift a portfolio's limit.
    @Test func aNegativeNumberOtherThanMinusOneIsNoLimitNotUnlimited() async throws {
        #expect(AnnouncedLimits.parse(.number(JSONNumber(text: "-5"))) == nil)
        #expect(AnnouncedLimits.parse(.string("-2")) == nil)
        #expect(AnnouncedLimits.parse(.string("-1")) == -1)
        #expect(AnnouncedLimits.parse(.number(JSONNumber(text: "0"))) == 0)
        let store = MemoryStore(clock: SystemWallClock())
        let portfolio = Portfolio(name: "main", senders: ["1"], messagingLimit: 250, accounts: ["9001"])
        try await store.set(AnnouncedLimits.key(account: "9001"), "-5", ttl: .seconds(60))
        #expect(await AnnouncedLimits(store: store).limit(of: portfolio, at: now) == 250, "a stored -5 leaves the configured limit")
    }

    @Test func anAnnouncedLimitOfOneOfItsAccountsOverridesThePortfolios() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let statuses = AnnouncedLimits(store: store), worker = AnnouncedLimits(store: store)
        let portfolio = Portfolio(name: "main", senders: ["1"], messagingLimit: 250, accounts: ["9001", "9002"])
        #expect(await worker.limit(of: portfolio, at: now) == 250, "nothing announced: the configured limit")
        try await statuses.announce(2000, account: "9002", at: now)
        #expect(await worker.limit(of: portfolio, at: now.addingTimeInterval(0.5)) == 250, "a worker trusts its read for a second")
        #expect(await worker.limit(of: portfolio, at: now.addingTimeInterval(1)) == 2000)
        try await statuses.announce(-1, account: "9001", at: now.addingTimeInterval(1))
        #expect(await worker.limit(of: portfolio, at: now.addingTimeInterval(2)) == nil, "unlimited")
        let other = Portfolio(name: "other", senders: ["2"], messagingLimit: 250, accounts: ["9003"])
        #expect(await worker.limit(of: other, at: now.addingTimeInterval(2)) == 250, "another account's update is not this portfolio's")
        store.setAvailable(false)
        #expect(await AnnouncedLimits(store: store).limit(of: portfolio, at: now) == 250, "a store that cannot be read leaves the configured limit")
    }

    /// The newest announcement of a portfolio's accounts is its limit: the first account with any
    /// announcement was, so an old TIER_2K of the first account hid a TIER_10K (or a downgrade) of
    /// the second for the 400 days announcements are kept.
    @Test func theNewestAnnouncementOfAPortfoliosAccountsIsItsLimit() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let statuses = AnnouncedLimits(store: store)
        let portfolio = Portfolio(name: "main", senders: ["1"], messagingLimit: 250, accounts: ["9001", "9002"])
        try await statuses.announce(2000, account: "9001", at: now.addingTimeInterval(-86_400))
        try await statuses.announce(10_000, account: "9002", at: now)
        #expect(await AnnouncedLimits(store: store).limit(of: portfolio, at: now) == 10_000)
        try await statuses.announce(1000, account: "9001", at: now.addingTimeInterval(60))
        #expect(await AnnouncedLimits(store: store).limit(of: portfolio, at: now) == 1000, "a downgrade after it")
        #expect(try await store.read(AnnouncedLimits.key(account: "9001"))?.value == "1000", "the limit as workers of an earlier version read it")
        try await store.set(AnnouncedLimits.key(account: "9003"), "100000", ttl: .seconds(60))
        let withOld = Portfolio(name: "main", senders: ["1"], messagingLimit: 250, accounts: ["9003", "9001"])
        #expect(await AnnouncedLimits(store: store).limit(of: withOld, at: now) == 1000, "a limit without its time (as written before) is the oldest")
    }

    /// Meta delivers a webhook again for days after a POST that failed: an update older than the one
    /// recorded replaced it (a TIER_2K delivered again after the TIER_10K that followed it).
    @Test func anOlderUpdateDeliveredLateDoesNotReplaceANewerOne() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let statuses = AnnouncedLimits(store: store)
        let portfolio = Portfolio(name: "main", senders: ["1"], messagingLimit: 250, accounts: ["9001"])
        try await statuses.announce(10_000, account: "9001", at: now)
        try await statuses.announce(2000, account: "9001", at: now.addingTimeInterval(-3600))
        #expect(await AnnouncedLimits(store: store).limit(of: portfolio, at: now) == 10_000)
        try await statuses.announce(1000, account: "9001", at: now)
        #expect(await AnnouncedLimits(store: store).limit(of: portfolio, at: now) == 1000, "one of the same moment is recorded (the later delivered)")
    }

    /// A sender's configured account that Meta's webhooks contradict is told once (`dispatch` logs
    /// it, `limits` prints it): that account's template updates would not reach the sender (review).
    @Test func aConfiguredAccountTheWebhooksContradictIsToldOnce() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let now = Date()
        try await AnnouncedLimits(store: store).learn(sender: "1", account: "9005", at: now)
        try await AnnouncedLimits(store: store).learn(sender: "2", account: "9002", at: now)
        let worker = AnnouncedLimits(store: store)
        #expect(await worker.contradiction(of: "9001", for: "1", at: now) == "9005")
        #expect(await worker.contradiction(of: "9001", for: "1", at: now) == nil, "once")
        #expect(await worker.contradiction(of: "9002", for: "2", at: now) == nil, "they agree")
        #expect(await worker.contradiction(of: "9003", for: "3", at: now) == nil, "no webhook named one")
    }

    /// A portfolio's sender or account that is not an id (the number itself) matched no sender, and
    /// the portfolio went unlimited without a word: `check` names it (review); so for a sender's
    /// account in `sender_accounts`, whose templates would then be keyed by something no update names.
    @Test(arguments: [
        (#"portfolios: { main: { senders: ["+15550100"], messaging_limit: 250 } }"#, #""+15550100" is not a phone number id"#),
        (#"portfolios: { main: { senders: ["100"], accounts: ["WABA 1"] } }"#, #"account "WABA 1" is not a WhatsApp Business Account id"#),
        (#"sender_accounts: { "100": "WABA 1" }"#, #"the account of sender 100, "WABA 1", is not a WhatsApp Business Account id"#),
        ("sender_accounts: { \"100\": \"9002\" }\nportfolios: { main: { senders: [\"100\"], accounts: [\"9001\"] } }",
         "`sender_accounts` gives sender 100 account 9002, which its portfolio `main` does not list in `accounts` (9001)"),
    ])
    func anIdThatIsNotOneIsAnError(_ setting: String, _ expected: String) throws {
        let location = SourceLocation(file: "t.yaml", line: 1, column: 1)
        let resource = ComponentDefinition(name: "whatsapp", uses: "whatsapp_cloud_api",
                                           settings: try settings("access_token: t\n\(setting)\n", schema: CloudAPISettings.schema), location: location)
        let pipeline = PipelineDefinition(version: 1, name: "t", source: ComponentDefinition(name: "source", uses: "rabbitmq", settings: Settings(), location: location),
                                          resources: [resource], steps: [], worker: WorkerConfiguration(), files: [])
        let errors = CloudAPISettings.check(resource, pipeline).map(\.message)
        #expect(errors.contains { $0.contains(expected) }, "\(errors)")
    }
}
