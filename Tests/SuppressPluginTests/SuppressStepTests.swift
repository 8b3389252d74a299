import Foundation
import Logging
import PipelineKit
import Synchronization
import RedisPlugin
@testable import SuppressPlugin
import Testing
import TestSupport
import ValidatePlugin
import WebhookPlugin
import WhatsAppPlugin

/// The `suppress` and `optout_keywords` steps on the in-memory store (the same capability as Redis:
/// `KeyValueStoreTests` runs both).
struct SuppressStepTests {
    static let logger: Logger = {
        var logger = Logger(label: "test.suppress")
        logger.logLevel = .critical
        return logger
    }()

    let clock = ManualWallClock()
    let store: MemoryStore
    let list: OptOutList

    init() {
        store = MemoryStore(clock: clock)
        list = OptOutList(store: store)
    }

    func context() -> StepContext {
        StepContext(stepName: "step", logger: Self.logger, workerID: "w", clock: clock, flow: FlowControl(clock: clock, logger: Self.logger))
    }

    /// The `suppress` step as a pipeline builds it, over this test's store and a stand-in whose default sender is 100.
    func suppress(_ yaml: String = "{}") async throws -> any Step {
        let cloudAPI = StandInCloudAPI(configuration: CloudAPIConfiguration(settings: try settings("access_token: t\nphone_number_id: \"100\"\ntemplate_categories: { order_update: utility }\n",
                                                                                                   schema: CloudAPISettings.schema)),
                                       slotStore: nil, clock: clock, log: StandInLog())
        let definition = StepDefinition(name: "suppress", uses: "suppress", settings: try settings(yaml, schema: StepPlugin.suppress.settings),
                                        onError: .deadLetter, degradation: .failClosed, location: SourceLocation(file: "t.yaml", line: 1, column: 1))
        let pipeline = PipelineDefinition(version: 1, name: "t", source: ComponentDefinition(name: "source", uses: "rabbitmq", settings: Settings(), location: definition.location),
                                          resources: [], steps: [definition], worker: WorkerConfiguration(), files: [])
        return try await StepPlugin.suppress.make(StepBuildContext(definition: definition, pipeline: pipeline,
                                                                   resources: Resources(["redis": store, "whatsapp": cloudAPI]), logger: Self.logger))
    }

    /// A message as `validate` leaves it.
    func validated(_ json: String) throws -> Message {
        var message = Message(body: Array(json.utf8))
        message.values[ValidatedMessageKey.self] = try MessageValidator().validate(message)
        return message
    }

    static let marketing = #"{"internalId":"m","to":"+5511933330001","type":"template","template":{"name":"spring_sale","language":"en_US"}}"#
    static let utility = #"{"internalId":"u","to":"+5511933330001","type":"template","template":{"name":"order_update","language":"en_US"}}"#

    @Test func aListedRecipientsMarketingEndsSuppressedAndItsUtilityGoesOn() async throws {
        let step = try await suppress()
        var message = try validated(Self.marketing)
        #expect(try await step.run(&message, context()) == .next, "not listed yet")
        #expect(try await list.add("+5511933330001", sender: "100"))
        guard case .finish(let label, let reason) = try await step.run(&message, context()) else { Issue.record("not suppressed"); return }
        #expect(label == .suppressed)
        #expect(reason.contains("list of sender 100"))
        var utility = try validated(Self.utility)
        #expect(try await step.run(&utility, context()) == .next, "order_update is a utility template (template_categories)")
    }

    @Test func theListIsPerSenderAndTheListForAllSendersCoversEveryone() async throws {
        let step = try await suppress()
        #expect(try await list.add("+5511933330001", sender: "100"))
        var fromAnother = try validated(#"{"internalId":"m","to":"+5511933330001","phoneNumberId":"200","type":"template","template":{"name":"spring_sale","language":"en_US"}}"#)
        #expect(try await step.run(&fromAnother, context()) == .next)
        #expect(try await list.add("+5511933330001", sender: nil))
        guard case .finish(.suppressed, let reason) = try await step.run(&fromAnother, context()) else { Issue.record("not suppressed"); return }
        #expect(reason.contains("all senders"))
    }

    @Test func theCategoriesSettingChoosesWhatIsSuppressed() async throws {
        let step = try await suppress("categories: [marketing, utility]")
        #expect(try await list.add("+5511933330001", sender: nil))
        var utility = try validated(Self.utility)
        guard case .finish(.suppressed, _) = try await step.run(&utility, context()) else { Issue.record("utility not suppressed"); return }
        var text = try validated(#"{"internalId":"t","to":"+5511933330001","type":"text","text":{"body":"Hi"}}"#)
        #expect(try await step.run(&text, context()) == .next, "a text is a service message")
    }

    @Test func aStoreThatIsDownIsUnavailableOnlyForWhatItWouldCheck() async throws {
        let step = try await suppress()
        store.setAvailable(false)
        var marketing = try validated(Self.marketing)
        await #expect(throws: StepFailure(.unavailable, "opt-out lists: redis unavailable (simulated)")) { try await step.run(&marketing, context()) }
        var utility = try validated(Self.utility)
        #expect(try await step.run(&utility, context()) == .next)
    }

    @Test(arguments: [("  stop. ", "STOP"), ("Unsubscribe!", "UNSUBSCRIBE"), ("parar", "PARAR"), ("¡Sair!", "SAIR"), ("stop it", "STOP IT")])
    func keywordsAreTheWholeMessageInAnyCaseTrimmed(_ text: String, _ keyword: String) {
        #expect(OptOutKeywordsStep.keyword(text) == keyword)
    }

    @Test func aStopChangesTheListAndItsUndoTakesTheChangeBack() async throws {
        let step = OptOutKeywordsStep(list: list, optOut: ["STOP"], resume: ["START"])
        func post(_ text: String) throws -> Message { try inbound([("5511933330001", text)]) }
        var stop = try post("STOP")
        #expect(try await step.run(&stop, context()) == .next)
        #expect(stop.values[PreparedEventsKey.self]?.map(\.routingKey) == ["optout.added"])
        #expect(try await list.listing("+5511933330001", sender: "100") == .sender)
        var again = try post("stop")
        _ = try await step.run(&again, context())
        #expect(again.values[PreparedEventsKey.self] == nil, "already listed: no change, no event")
        await step.undo(again, context())
        #expect(try await list.listing("+5511933330001", sender: "100") == .sender, "an undo takes back only what its own run changed")
        await step.undo(stop, context())
        #expect(try await list.listing("+5511933330001", sender: "100") == nil, "the refused run's addition is taken back, so Meta's retry makes it again")
    }

    /// A POST of inbound texts as the statuses pipeline reads it (`metadata`: the change's, as JSON).
    func inbound(_ texts: [(from: String, body: String)], metadata: String = #"{"phone_number_id":"100"}"#) throws -> Message {
        let messages = texts.map { #"{"from":"\#($0.from)","type":"text","text":{"body":"\#($0.body)"}}"# }.joined(separator: ",")
        let body = #"{"entry":[{"changes":[{"field":"messages","value":{"metadata":\#(metadata),"messages":[\#(messages)]}}]}]}"#
        var message = Message(body: Array(body.utf8))
        message.values[WebhookBatchKey.self] = WebhookBatch(try #require(message.payload), receivedAt: clock.now())
        return message
    }

    /// A STOP and a START of one writer in one batch, taken back (their events refused), leave the
    /// list as it was: taken back first to last, the START's undo listed the writer again.
    @Test func aStopAndAStartInOneBatchAreTakenBackLastFirst() async throws {
        let step = OptOutKeywordsStep(list: list, optOut: ["STOP"], resume: ["START"])
        var batch = try inbound([("5511933330001", "STOP"), ("5511933330001", "START")])
        _ = try await step.run(&batch, context())
        #expect(batch.values[PreparedEventsKey.self]?.map(\.routingKey) == ["optout.added", "optout.removed"])
        await step.undo(batch, context())
        #expect(try await list.listing("+5511933330001", sender: "100") == nil, "as before the batch")
    }

    /// The runtime does not undo the step that failed: the changes it made before the store failed
    /// stayed, so Meta's retry of the POST found them made and published no event for them.
    @Test func aRunTheStoreFailsPartWayTakesBackWhatItChanged() async throws {
        let failing = FailingAdds(failFrom: 2)
        let step = OptOutKeywordsStep(list: OptOutList(store: failing.store(over: store)), optOut: ["STOP"], resume: ["START"])
        var batch = try inbound([("5511933330001", "STOP"), ("5511933330002", "STOP")])
        await #expect(throws: StepFailure.self) { try await step.run(&batch, context()) }
        #expect(try await list.listing("+5511933330001", sender: "100") == nil, "the first change taken back")
        failing.heal()
        var retry = try inbound([("5511933330001", "STOP"), ("5511933330002", "STOP")])
        _ = try await step.run(&retry, context())
        #expect(retry.values[PreparedEventsKey.self]?.count == 2, "the retry makes both changes, with their events")
    }

    /// A change that names no business number is no writer's word on the list for every sender: a
    /// START took the writer off the list an operator keeps for all senders.
    @Test func anInboundTextWithoutTheNumberWrittenToChangesNothing() async throws {
        let step = OptOutKeywordsStep(list: list, optOut: ["STOP"], resume: ["START"])
        _ = try await list.add("+5511933330001", sender: nil)
        for metadata in ["{}", #"{"phone_number_id":100}"#, #"{"phone_number_id":""}"#] {
            var batch = try inbound([("5511933330001", "START"), ("5511933330002", "STOP")], metadata: metadata)
            _ = try await step.run(&batch, context())
            #expect(batch.values[PreparedEventsKey.self] == nil, "\(metadata)")
        }
        #expect(try await list.listing("+5511933330001", sender: nil) == .allSenders)
        #expect(try await list.numbers(sender: nil) == ["+5511933330001"])
    }

    /// A Brazilian registered before the ninth digit writes from `55` + area + 8 digits; upstream
    /// sends to the number with the 9. Their STOP listed a form no message's `to` matched.
    @Test func aStopFromTheRegisteredFormSuppressesMarketingToTheDialledOne() async throws {
        let keywords = OptOutKeywordsStep(list: list, optOut: ["STOP"], resume: ["START"])
        var stop = try inbound([("551187654321", "STOP")])
        _ = try await keywords.run(&stop, context())
        var marketing = try validated(#"{"internalId":"m","to":"+5511987654321","type":"template","template":{"name":"spring_sale","language":"en_US"}}"#)
        guard case .finish(.suppressed, _) = try await suppress().run(&marketing, context()) else { Issue.record("not suppressed"); return }
        #expect(try await list.listing("+525512345678", sender: nil) == nil)
        #expect(try await list.add("+5215512345678", sender: nil))
        #expect(try await list.listing("+525512345678", sender: "100") == .allSenders, "Mexico: the form with 1 covers the one without")
    }

    /// A START takes the writer off whichever form they were listed by (an operator's, or the
    /// `to` of a message Meta refused with 131050); taking back a STOP removes only the form it added.
    @Test func aStartRemovesEveryFormAndATakenBackStopOnlyItsOwn() async throws {
        let keywords = OptOutKeywordsStep(list: list, optOut: ["STOP"], resume: ["START"])
        #expect(try await list.add("+5511987654321", sender: "100"))
        var stop = try inbound([("551187654321", "STOP")])
        _ = try await keywords.run(&stop, context())
        await keywords.undo(stop, context())
        #expect(try await list.numbers(sender: "100") == ["+5511987654321"], "the form listed before the STOP stays")
        var start = try inbound([("551187654321", "START")])
        _ = try await keywords.run(&start, context())
        #expect(start.values[PreparedEventsKey.self]?.map(\.routingKey) == ["optout.removed"])
        #expect(try await list.listing("+5511987654321", sender: "100") == nil)
    }

    /// A STOP and a START of one writer in one batch, taken back, end as they began when the writer
    /// was listed in the other form: the START's take-back put back only the writer's form, which
    /// the STOP's then took off, and the listing was gone (review).
    @Test func aStopAndAStartTakenBackPutBackTheFormThatWasListed() async throws {
        let keywords = OptOutKeywordsStep(list: list, optOut: ["STOP"], resume: ["START"])
        #expect(try await list.add("+5511987654321", sender: "100"))
        var batch = try inbound([("551187654321", "STOP"), ("551187654321", "START")])
        _ = try await keywords.run(&batch, context())
        #expect(batch.values[PreparedEventsKey.self]?.map(\.routingKey) == ["optout.added", "optout.removed"])
        await keywords.undo(batch, context())
        #expect(try await list.numbers(sender: "100") == ["+5511987654321"], "as before the batch")
    }
}

/// WhatsApp knows a Brazilian or Mexican user by the number they registered with, which may lack
/// Brazil's ninth digit or keep Mexico's `1`: their STOP listed a form no outbound `to` matched.
struct PhoneNumberFormsTests {
    @Test(arguments: [
        ("+5511987654321", ["+5511987654321", "+551187654321"]),  // Brazil, the ninth digit and without
        ("+551187654321", ["+551187654321", "+5511987654321"]),
        ("+559281723241", ["+559281723241", "+5592981723241"]),
        ("+551133334444", ["+551133334444"]),  // a landline (2–5): no mobile form
        ("+5511933334444", ["+5511933334444"]),  // a 9 before 3: a number issued with nine digits
        ("+525512345678", ["+525512345678", "+5215512345678"]),  // Mexico, without and with the 1
        ("+5215512345678", ["+5215512345678", "+525512345678"]),
        ("+14155550100", ["+14155550100"]),
        ("+44207946000", ["+44207946000"]),
    ])
    func aNumberAndItsOtherForm(_ number: String, _ forms: [String]) {
        #expect(PhoneNumberForms.of(number) == forms)
    }
}

/// Member additions that fail from the `failFrom`-th on, until healed.
final class FailingAdds: Sendable {
    private let failFrom: Int
    private let state = Mutex((adds: 0, healed: false))

    init(failFrom: Int) {
        self.failFrom = failFrom
    }

    func heal() { state.withLock { $0.healed = true } }

    /// `base`, its additions failing.
    func store(over base: MemoryStore) -> InterceptedStore {
        InterceptedStore(base, beforeAdd: { [self] _ throws(StoreUnavailable) in
            let fails = state.withLock { state in
                state.adds += 1
                return !state.healed && state.adds >= failFrom
            }
            if fails { throw StoreUnavailable("refused (test)") }
        })
    }
}
