import Foundation
import Logging
import PipelineKit
import RedisPlugin
import Testing
import TestSupport
import ValidatePlugin
@testable import WhatsAppPlugin

/// A message waiting for its portfolio's messaging-limit window (SPEC 15) comes back every few
/// minutes while the window is full. It took one of its sender's send slots each time, before it
/// found the window full: a campaign to 12,000 new recipients at a 2,000 limit left 10,000 of them
/// taking ~85 slots a second, beyond a sender's 80/s — messages to counted recipients and texts,
/// which SPEC 15 keeps flowing, crawled (audit, helper).
@Suite struct MessagingLimitWaitTests {
    let clock = ManualWallClock()
    let logger = Logger(label: "test.dispatch")

    private func message(_ json: String, _ context: StepContext) async throws -> Message {
        var message = Message(body: Array(json.utf8))
        _ = try await ValidateStep(validator: MessageValidator()).run(&message, context)
        _ = try await TransformStep().run(&message, context)
        return message
    }

    private func template(to recipient: String, _ id: String) -> String {
        #"{"internalId":"\#(id)","to":"\#(recipient)","phoneNumberId":"500","type":"template","template":{"name":"order_update","language":"en_US"}}"#
    }

    let store: MemoryStore
    let context: StepContext
    let step: DispatchStep

    /// One message a second from sender 500; a limit of 2 recipients a day, floor(0.9 × 2) = 1 outside the urgent lane.
    init() throws {
        store = MemoryStore(clock: clock)
        context = StepContext(stepName: "dispatch", logger: logger, workerID: "w", clock: clock, flow: FlowControl(clock: clock, logger: logger))
        let configuration = CloudAPIConfiguration(settings: try settings("""
            access_token: t
            throughput: 1
            portfolios: { small: { senders: ["500"], messaging_limit: 2 } }
            """, schema: CloudAPISettings.schema))
        step = DispatchStep(client: StandInCloudAPI(configuration: configuration, slotStore: nil, clock: clock, log: StandInLog()),
                            limits: AccountLimits(templates: TemplateStates(store: store), messaging: MessagingLimits(store: store)))
    }

    /// The window's one unit used by a first recipient (returned: its message), then a second
    /// recipient's template found waiting for the window, after its turn at the sender's slots.
    private func fillTheWindow() async throws -> Message {
        var first = try await message(template(to: "+5511933330001", "m1"), context)
        #expect(try await step.run(&first, context) == .next, "the window's one unit")
        var waiting = try await message(template(to: "+5511933330002", "m2"), context)
        guard case .wait(let turn) = try await step.run(&waiting, context), turn.reason == .throughput else {
            throw TestFailure("the second message waits for its turn first")
        }
        clock.advance(by: .milliseconds(Int64((turn.until.timeIntervalSince(clock.now()) * 1000).rounded(.up))))
        guard case .wait(let full) = try await step.run(&waiting, context), full.reason == .messagingLimit else {
            throw TestFailure("the window is full")
        }
        return first
    }

    @Test func aMessageWaitingForAFullWindowTakesNoSendSlot() async throws {
        _ = try await fillTheWindow()
        // A slot later, the waiting message comes back (the window still full), then a text of the same sender.
        clock.advance(by: .milliseconds(1100))
        var again = try await message(template(to: "+5511933330002", "m2"), context)
        guard case .wait(let stillFull) = try await step.run(&again, context), stillFull.reason == .messagingLimit else {
            Issue.record("the window is still full")
            return
        }
        var text = try await message(#"{"internalId":"t1","to":"+5511933330003","phoneNumberId":"500","type":"text","text":{"body":"Hi"}}"#, context)
        #expect(try await step.run(&text, context) == .next, "the slot the waiting message did not need")
    }

    /// Only a look at the window comes before the slot: a unit taken there was kept by a message
    /// that then waited for its turn — given back for the wrong entry after a refusal, never if it
    /// expired or went round the delay queues (review).
    @Test func aMessageThatFindsRoomTakesItsUnitOnlyWhenItsSlotComes() async throws {
        let first = try await fillTheWindow()
        // The first recipient's unit comes back (the Cloud API refused its message).
        let unit = try #require(first.values[MessagingUnitKey.self])
        try await store.giveBack(unit.key, recipient: unit.recipient, takenAt: unit.takenAt)
        var third = try await message(template(to: "+5511933330003", "m3"), context)
        guard case .wait(let turn) = try await step.run(&third, context), turn.reason == .throughput else {
            Issue.record("room in the window: it waits for its turn")
            return
        }
        #expect(try await store.counted(unit.key, window: MessagingLimits.window) == 0, "no unit taken while it waits for its slot")
        clock.advance(by: .milliseconds(Int64((turn.until.timeIntervalSince(clock.now()) * 1000).rounded(.up))))
        #expect(try await step.run(&third, context) == .next)
        #expect(try await store.counted(unit.key, window: MessagingLimits.window) == 1, "its unit, taken just before its request")
    }
}
