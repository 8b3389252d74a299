import Foundation
import Logging
import PipelineKit
import RedisPlugin
import Testing
import ValidatePlugin
@testable import WhatsAppPlugin

/// Template states shared through a store by two workers (two `TemplateStates` over one store).
@Suite struct TemplateStatesTests {
    let start = Date(timeIntervalSince1970: 1_800_000_000)

    @Test func aPauseOneWorkerLearnsReachesTheOtherWithinASecondAndEndsOnItsOwn() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let first = TemplateStates(store: store), second = TemplateStates(store: store)
        #expect(try await second.state(of: "sale", "en_US", at: start) == nil)
        let until = start.addingTimeInterval(3 * 3600)
        try await first.pause("sale", "en_US", until: until, at: start)
        #expect(try await first.state(of: "sale", "en_US", at: start) == .paused(until: until), "in effect at once where it was learned")
        #expect(try await second.state(of: "sale", "en_US", at: start.addingTimeInterval(0.5)) == nil, "the other trusts its read for a second")
        #expect(try await second.state(of: "sale", "en_US", at: start.addingTimeInterval(1)) == .paused(until: until))
        #expect(try await second.state(of: "sale", "pt_BR", at: start.addingTimeInterval(1)) == nil, "a template is its name and language")
        #expect(try await second.state(of: "sale", "en_US", at: until) == nil, "the pause ends by itself")
    }

    @Test func anApprovalEndsAPauseAndADisabledTemplateStaysDisabled() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let worker = TemplateStates(store: store), statuses = TemplateStates(store: store)
        try await worker.pause("sale", "en_US", until: start.addingTimeInterval(3600), at: start)
        try await statuses.approve("sale", "en_US", at: start)
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(1)) == nil)
        try await statuses.disable("promo", "en_US", at: start)
        #expect(try await worker.state(of: "promo", "en_US", at: start.addingTimeInterval(86_400)) == .disabled)
        #expect(try await store.read(TemplateStates.key("promo", "en_US"))?.value == "disabled", "what other services read")
    }

    @Test func aShorterPauseDoesNotCutALongerOneShort() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let worker = TemplateStates(store: store)
        let second = start.addingTimeInterval(6 * 3600)
        try await worker.pause("sale", "en_US", until: second, at: start)
        try await worker.pause("sale", "en_US", until: start.addingTimeInterval(3 * 3600), at: start)
        #expect(try await worker.state(of: "sale", "en_US", at: start) == .paused(until: second))
        #expect(try await TemplateStates(store: store).state(of: "sale", "en_US", at: start) == .paused(until: second), "nor in the store")
    }

    @Test func whatAWorkerLearnedHoldsWhileTheStoreCannotBeRead() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let worker = TemplateStates(store: store)
        store.setAvailable(false)
        let until = start.addingTimeInterval(3600)
        await #expect(throws: StoreUnavailable.self) { try await worker.pause("sale", "en_US", until: until, at: start) }
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(5)) == .paused(until: until), "not sent again past the second's trust")
        store.setAvailable(true)
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(10)) == .paused(until: until), "an empty store does not undo what could not be shared")
    }

    @Test func aStoreThatIsDownIsAnError() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        store.setAvailable(false)
        await #expect(throws: StoreUnavailable.self) { try await TemplateStates(store: store).state(of: "sale", "en_US", at: start) }
    }

    @Test(arguments: ["paused:abc", "resumed", ""])
    func anUnreadableStateIsNoState(value: String) {
        #expect(TemplateStates.decode(value) == nil)
    }
}

/// What `dispatch` answers for a message of a paused template, as the pause goes on.
@Suite struct PausedTemplateWaitTests {
    @Test func aWaitingMessageLooksAgainEveryFewSecondsInMemoryWhileItsTripsRoundTheSourceGrowLonger() async throws {
        let clock = ManualWallClock()
        let start = clock.now()
        let templates = TemplateStates(store: nil)
        let limits = AccountLimits(templates: templates)
        let logger = Logger(label: "test")
        let context = StepContext(stepName: "dispatch", logger: logger, workerID: "w", clock: clock, flow: FlowControl(clock: clock, logger: logger))
        var message = Message(body: Array(#"{"internalId":"a","to":"+5511987654321","type":"template","template":{"name":"sale","language":"en_US"}}"#.utf8))
        message.values[ValidatedMessageKey.self] = try MessageValidator().validate(message)
        try await templates.pause("sale", "en_US", until: start.addingTimeInterval(3 * 3600), at: start)

        func wait(after elapsed: TimeInterval) async throws -> Wait? {
            clock.advance(by: .milliseconds(Int64(start.addingTimeInterval(elapsed).timeIntervalSince(clock.now()) * 1000)))
            guard case .wait(let wait)? = try await limits.beforeSending(&message, context) else { return nil }
            return wait
        }
        let first = try #require(try await wait(after: 0))
        #expect(first.until == start.addingTimeInterval(5), "soon after the pause began: back in 5 s either way")
        #expect(first.looksAgainAfter == .seconds(5))
        let late = try #require(try await wait(after: 3600))
        #expect(late.until == start.addingTimeInterval(3600 + 120), "an hour in, a trip round the source lasts 2 min")
        #expect(late.looksAgainAfter == .seconds(5), "but parked it still looks again after 5 s: an approval is followed within 10 s")
        #expect(late.reason == .templatePaused && late.key == TemplateStates.key("sale", "en_US"))
    }
}
