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

    @Test func aMessageWaitingForAFullWindowTakesNoSendSlot() async throws {
        let flow = FlowControl(clock: clock, logger: logger)
        let context = StepContext(stepName: "dispatch", logger: logger, workerID: "w", clock: clock, flow: flow)
        let store = MemoryStore(clock: clock)
        // One message a second; a limit of 2 recipients a day, floor(0.9 × 2) = 1 outside the urgent lane.
        let configuration = CloudAPIConfiguration(settings: try settings("""
            access_token: t
            throughput: 1
            portfolios: { small: { senders: ["500"], messaging_limit: 2 } }
            """, schema: CloudAPISettings.schema))
        let step = DispatchStep(client: StandInCloudAPI(configuration: configuration, slotStore: nil, clock: clock, log: StandInLog()),
                                limits: AccountLimits(templates: TemplateStates(store: store), messaging: MessagingLimits(store: store)))

        var first = try await message(template(to: "+5511933330001", "m1"), context)
        #expect(try await step.run(&first, context) == .next, "the window's one unit")

        var waiting = try await message(template(to: "+5511933330002", "m2"), context)
        guard case .wait(let turn) = try await step.run(&waiting, context), turn.reason == .throughput else {
            Issue.record("the second message waits for its turn first")
            return
        }
        clock.advance(by: .milliseconds(Int64((turn.until.timeIntervalSince(clock.now()) * 1000).rounded(.up))))
        guard case .wait(let full) = try await step.run(&waiting, context), full.reason == .messagingLimit else {
            Issue.record("the window is full")
            return
        }
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
}
