import Foundation
import Logging
import PipelineKit
import RedisPlugin
import Synchronization
import Testing
import TestSupport
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

    /// A `132015` for a request begun before this worker found the template approved is the
    /// answer of the pause that ended: the template is not paused again (it was, for 3 h — review),
    /// while a request begun after the approval and refused pauses it anew.
    @Test func aRefusalOfARequestBegunBeforeTheApprovalDoesNotPauseAgain() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let worker = TemplateStates(store: store), statuses = TemplateStates(store: store)
        let until = start.addingTimeInterval(3 * 3600)
        try await statuses.pause("sale", "en_US", until: until, at: start)
        #expect(try await worker.state(of: "sale", "en_US", at: start) == .paused(until: until))
        let begun = start.addingTimeInterval(10)
        try await statuses.approve("sale", "en_US", at: start.addingTimeInterval(20))
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(21)) == nil, "the approval read")
        #expect(try await worker.refused("sale", "en_US", at: start.addingTimeInterval(22), startedAt: begun) == nil, "the answer of the pause that ended")
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(23)) == nil, "not paused again")
        let refusedAt = start.addingTimeInterval(24)
        #expect(try await worker.refused("sale", "en_US", at: refusedAt, startedAt: start.addingTimeInterval(23)) == .paused(until: refusedAt.addingTimeInterval(3 * 3600)),
                "a request begun after the approval: paused anew")
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

    /// A pause learned while the store could not be written was kept by that worker for its 3 h
    /// after an approval (which deletes a key the store never held): the approval is noted, and
    /// what was learned before it is dropped; a pause learned after it stands.
    @Test func anApprovalEndsWhatAWorkerCouldNotShare() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let worker = TemplateStates(store: store), statuses = TemplateStates(store: store)
        store.setAvailable(false)
        await #expect(throws: StoreUnavailable.self) { try await worker.refused("sale", "en_US", at: start) }
        store.setAvailable(true)
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(10)) == .paused(until: start.addingTimeInterval(3 * 3600)))
        try await statuses.approve("sale", "en_US", at: start.addingTimeInterval(20))
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(21)) == nil, "the approval ends it")
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(22)) == nil)

        store.setAvailable(false)
        await #expect(throws: StoreUnavailable.self) { try await worker.refused("sale", "en_US", at: start.addingTimeInterval(30)) }
        store.setAvailable(true)
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(40)) == .paused(until: start.addingTimeInterval(30 + 3 * 3600)),
                "a pause learned after the approval stands")
    }

    /// SPEC 15: a pause without an update ends 3 h after the *first* `132015`. The answers of the
    /// requests that were under way, or of other workers, moved the end later by each one, and a
    /// worker that had not read the store yet cut an update's `SECOND_PAUSE` (6 h) to 3 h.
    @Test func laterRefusalsLeaveThePauseInEffectAsItIs() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        let first = TemplateStates(store: store), other = TemplateStates(store: store)
        let threeHours = start.addingTimeInterval(3 * 3600)
        #expect(try await first.refused("sale", "en_US", at: start) == .paused(until: threeHours))
        #expect(try await first.refused("sale", "en_US", at: start.addingTimeInterval(60)) == .paused(until: threeHours), "this worker's own later answers")
        #expect(try await other.refused("sale", "en_US", at: start.addingTimeInterval(3600)) == .paused(until: threeHours), "another worker's, an hour on")
        #expect(try await TemplateStates(store: store).state(of: "sale", "en_US", at: start.addingTimeInterval(3600)) == .paused(until: threeHours), "the store's end did not move")

        let sixHours = start.addingTimeInterval(6 * 3600)
        try await TemplateStates(store: store).pause("promo", "en_US", until: sixHours, at: start)
        #expect(try await other.refused("promo", "en_US", at: start.addingTimeInterval(60)) == .paused(until: sixHours), "a SECOND_PAUSE is not cut short")
        #expect(try await TemplateStates(store: store).state(of: "promo", "en_US", at: start.addingTimeInterval(60)) == .paused(until: sixHours))
    }

    /// A read of the store that began before this worker read a `132015` answer must not put back
    /// what it found (no pause): SPEC 15, no request of a template starts after its `132015` is read.
    @Test func aReadUnderWayDoesNotUndoARefusalLearnedMeanwhile() async throws {
        let store = HeldReads()
        let worker = TemplateStates(store: store.store(over: MemoryStore(clock: SystemWallClock())))
        let read = Task { try await worker.state(of: "sale", "en_US", at: start) }
        try await poll("the read under way") { store.held }
        try await worker.refused("sale", "en_US", at: start.addingTimeInterval(0.1))
        store.release()
        #expect(try await read.value == .paused(until: start.addingTimeInterval(0.1 + 3 * 3600)), "the read answers what is known now")
        #expect(try await worker.state(of: "sale", "en_US", at: start.addingTimeInterval(0.5)) != nil, "and leaves it remembered")
    }

    @Test func aStoreThatIsDownIsAnError() async throws {
        let store = MemoryStore(clock: SystemWallClock())
        store.setAvailable(false)
        await #expect(throws: StoreUnavailable.self) { try await TemplateStates(store: store).state(of: "sale", "en_US", at: start) }
    }

    /// `paused:1e300` (a value another service wrote) gave a pause end that trapped where the wait was made.
    @Test(arguments: ["paused:abc", "resumed", "", "paused:1e300", "paused:inf", "paused:nan"])
    func anUnreadableStateIsNoState(value: String) {
        #expect(TemplateStates.decode(value) == nil)
    }
}

/// The store keys of a template's state: its account's (`sender_accounts`), or without one (SPEC 15).
@Suite struct TemplateKeyTests {
    @Test func aTemplateIsKeyedByItsAccountWhenGiven() async throws {
        #expect(TemplateStates.key("sale", "en_US") == "template:sale:en_US")
        #expect(TemplateStates.key("sale", "en_US", account: "9001") == "template:9001:sale:en_US")
        let store = MemoryStore(clock: SystemWallClock())
        let now = Date()
        try await TemplateStates(store: store).disable("sale", "en_US", account: "9001", at: now)
        let other = TemplateStates(store: store)
        #expect(try await other.state(of: "sale", "en_US", account: "9002", at: now) == nil)
        #expect(try await other.state(of: "sale", "en_US", at: now) == nil)
        #expect(try await other.state(of: "sale", "en_US", account: "9001", at: now) == .disabled, "read from the store")
    }

    @Test func aKeyIsDescribedWithItsAccount() {
        #expect(TemplateStates.parts(ofKey: TemplateStates.key("sale", "en_US", account: "9001")) == ("sale:en_US", "9001"))
        #expect(TemplateStates.parts(ofKey: TemplateStates.key("sale", "en_US")) == ("sale:en_US", nil))
        #expect(TemplateStates.describe("sale", "en_US", account: nil) == "sale (en_US)")
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
        _ = try await TransformStep().run(&message, context)
        let request = try #require(message.values[PreparedRequestKey.self])
        let configuration = CloudAPIConfiguration(settings: try settings("access_token: t\n", schema: CloudAPISettings.schema))
        try await templates.pause("sale", "en_US", until: start.addingTimeInterval(3 * 3600), at: start)

        func wait(after elapsed: TimeInterval) async throws -> Wait? {
            clock.advance(by: .milliseconds(Int64(start.addingTimeInterval(elapsed).timeIntervalSince(clock.now()) * 1000)))
            guard case .wait(let wait)? = try await limits.beforeSending(&message, request, sender: "100", configuration, context) else { return nil }
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

/// Reads that find their value at once and then wait for `release()` (a read under way).
final class HeldReads: Sendable {
    private let gate = AsyncStream<Void>.makeStream()
    private let holding = Mutex(false)

    var held: Bool { holding.withLock { $0 } }
    func release() { gate.continuation.finish() }

    /// `base`, its reads held.
    func store(over base: MemoryStore) -> InterceptedStore {
        InterceptedStore(base, afterRead: { [self] _ in
            holding.withLock { $0 = true }
            for await _ in gate.stream {}
        })
    }
}
