import Foundation
import PipelineKit
import RedisPlugin
import Testing
import WhatsAppPlugin

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
