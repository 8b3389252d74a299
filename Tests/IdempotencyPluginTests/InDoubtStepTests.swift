import Foundation
import IdempotencyPlugin
import Logging
import PipelineKit
import RedisPlugin
import Testing
import TestSupport

/// The idempotency step's side of sends in doubt (SPEC 13), on the in-memory store and a clock
/// the tests move: the edges an adversarial review found, each a way to send a message twice.
@Suite struct InDoubtStepTests {
    let clock = ManualWallClock()
    let store: MemoryStore
    let step: IdempotencyStep
    let window = InDoubtPolicy(window: .seconds(300), decision: .deadLetter)

    init() throws {
        // Bootstrapped before any step makes its counters (they bind to the metrics system of the moment).
        _ = TestMetricsSystem.shared
        store = MemoryStore(clock: clock)
        step = IdempotencyStep(store: store, key: try KeyTemplate("doubt:{internalId}"), ttl: .seconds(86_400), lease: .seconds(120),
                               onDuplicate: .ack, onInFlight: .requeue, orphanAge: .seconds(11))
    }

    private func context(_ worker: String = "worker-a") -> StepContext {
        var logger = Logger(label: "test.in-doubt")
        logger.logLevel = .critical
        return StepContext(stepName: "idempotency", logger: logger, workerID: worker, clock: clock, flow: FlowControl(clock: clock, logger: logger), inDoubt: window)
    }

    private func message(_ carried: [String: String] = [:], id: String = "m1") -> Message {
        Message(body: Array(#"{"internalId":"\#(id)","to":"+5511987654321","type":"text","text":{"body":"Hi"}}"#.utf8), carried: carried)
    }

    /// Message `id` claimed and sent, its send in doubt while the store is down (the hold cannot
    /// mark its key: it keeps the claim's `processing` value); the store is back on return.
    private func sendInDoubtNotMarked(id: String) async throws {
        var claimed = message(id: id)
        #expect(try await step.run(&claimed, context()) == .next)
        store.setAvailable(false)
        #expect(await step.holdInDoubt(&claimed, context()))
        store.setAvailable(true)
    }

    /// Under `on_in_flight: ack` the claim lets another delivery that finds it end as a copy in
    /// flight — the broker's redelivery of this one too: the run's own copy must outlive its
    /// delivery. Not under `requeue`, nor for a delivery that carried the note (never so dropped).
    @Test func aClaimUnderAckOutlivesItsDelivery() async throws {
        let acking = IdempotencyStep(store: store, key: try KeyTemplate("outlive:{internalId}"), ttl: .seconds(86_400), lease: .seconds(120),
                                     onDuplicate: .ack, onInFlight: .ack, orphanAge: .seconds(11))
        var first = message(id: "ack-1")
        #expect(try await acking.run(&first, context()) == .next)
        #expect(first.outlivesItsDelivery)
        var noted = message(["claimed": "1"], id: "ack-2")
        #expect(try await acking.run(&noted, context()) == .next)
        #expect(!noted.outlivesItsDelivery, "its redelivery carries the note too")
        var requeueing = message(id: "requeue-1")
        #expect(try await step.run(&requeueing, context()) == .next)
        #expect(!requeueing.outlivesItsDelivery)
    }

    /// A message whose send is in doubt, looking at its key while the store is down: under
    /// `fail_open` the old code skipped the step and sent again.
    @Test func aSendInDoubtNeverGoesOnWithoutItsKey() async throws {
        var claimed = message()
        #expect(try await step.run(&claimed, context()) == .next)
        #expect(await step.holdInDoubt(&claimed, context()))
        store.setAvailable(false)
        let outcome = try await step.run(&claimed, context())
        guard case .wait(let wait) = outcome else {
            Issue.record("in doubt with the store down: it waits, never throws `unavailable` (fail_open would send it): \(outcome)")
            return
        }
        #expect(wait.reason == .inDoubt)
        #expect(wait.looksAgainAfter != nil, "kept in memory while parking has room, whatever its delay: counted as waiting in_doubt")
    }

    /// The hold could not mark the key (store down), which stays `processing` by this worker; later
    /// the store is back and the claim is older than the orphan age. The old code took it over and sent again.
    @Test func anUnmarkedClaimOfASendInDoubtIsMarkedNotTakenOver() async throws {
        var claimed = message()
        #expect(try await step.run(&claimed, context()) == .next)
        store.setAvailable(false)
        #expect(await step.holdInDoubt(&claimed, context()))
        store.setAvailable(true)
        clock.advance(by: .seconds(30))
        let outcome = try await step.run(&claimed, context())
        guard case .wait(let wait) = outcome, wait.reason == .inDoubt else {
            Issue.record("its own unmarked claim is marked in doubt and waited for, not taken over: \(outcome)")
            return
        }
        #expect(try await store.read("doubt:m1")?.value.contains(#""status":"in_doubt""#) == true)
    }

    /// Under `fail_open` a claim whose answer came too late is skipped, yet its `SET` landed: the key
    /// holds this worker's `processing` value and the message no claim. Its send then went in doubt.
    /// The old code left that value as "another's", the send was retried like a transient failure,
    /// and the retry took the value over as an orphan and sent again.
    @Test func aClaimThatLandedWithItsAnswerLostIsHeldWhenItsSendGoesInDoubt() async throws {
        _ = try await store.claim("doubt:m1", owner: "worker-a", ttl: .seconds(86_400), lease: .seconds(120), takeOverOwnAfter: nil, inDoubt: window, trace: nil)
        var other = message()
        #expect(!(await step.holdInDoubt(&other, context("worker-b"))), "on another worker, it is another's value: left alone")
        #expect(try await store.read("doubt:m1")?.value.contains(#""status":"processing""#) == true)
        var skipped = message()
        #expect(await step.holdInDoubt(&skipped, context()), "its own processing value is this send's claim: held, never retried blindly")
        #expect(try await store.read("doubt:m1")?.value.contains(#""status":"in_doubt""#) == true)
    }

    /// A send in doubt settled by its status is reported `sent` by one delivery of the message: the
    /// original redelivered beside its waiting copy (a lost ack, a second publish) finds the same
    /// key completed and ends as a duplicate with the wamid, whichever looks first. The old code
    /// reported `sent` twice.
    @Test(arguments: [false, true]) func aSendSettledInDoubtIsReportedSentByOneDelivery(redeliveryFirst: Bool) async throws {
        var waiting = message()
        #expect(try await step.run(&waiting, context()) == .next)
        #expect(await step.holdInDoubt(&waiting, context()))
        var redelivered = message()
        let found = try await step.run(&redelivered, context("worker-b"))
        guard case .wait = found else {
            Issue.record("the redelivered original waits on the send in doubt: \(found)")
            return
        }
        try await store.set("doubt:m1", KeyState.completed(wamid: "wamid.1", at: clock.now()).encoded(), ttl: .seconds(86_400))
        let first, second: StepOutcome
        if redeliveryFirst {
            first = try await step.run(&redelivered, context("worker-b"))
            second = try await step.run(&waiting, context())
        } else {
            first = try await step.run(&waiting, context())
            second = try await step.run(&redelivered, context("worker-b"))
        }
        guard case .alreadySent = first else {
            Issue.record("the first to look reports the settlement: \(first)")
            return
        }
        guard case .finish(as: .duplicate, _) = second else {
            Issue.record("the second ends as a duplicate, not a second `sent`: \(second)")
            return
        }
        #expect([waiting, redelivered].map { $0.values[DeliveryReceiptKey.self] } == ["wamid.1", "wamid.1"])
    }

    /// Two deliveries wait on one send in doubt and the window passes under `resend`: one sends it
    /// again, the other finds that claim in flight and later the resend's completion — it ends as a
    /// duplicate. The old code reported it `sent` too, "resolved by a status".
    @Test func aDeliveryWaitingOnASendThatWasResentEndsAsADuplicate() async throws {
        var logger = Logger(label: "test.in-doubt")
        logger.logLevel = .critical
        func resending(_ worker: String) -> StepContext {
            StepContext(stepName: "idempotency", logger: logger, workerID: worker, clock: clock, flow: FlowControl(clock: clock, logger: logger),
                        inDoubt: InDoubtPolicy(window: .seconds(300), decision: .resend))
        }
        var waiting = message()
        #expect(try await step.run(&waiting, resending("worker-a")) == .next)
        #expect(await step.holdInDoubt(&waiting, resending("worker-a")))
        var redelivered = message()
        guard case .wait = try await step.run(&redelivered, resending("worker-b")) else {
            Issue.record("the redelivered original waits on the send in doubt")
            return
        }
        clock.advance(by: .seconds(301))
        #expect(try await step.run(&waiting, resending("worker-a")) == .next, "sent again after the window")
        #expect(waiting.attempt == 2)
        guard case .requeue = try await step.run(&redelivered, resending("worker-b")) else {
            Issue.record("the other finds the resend in flight")
            return
        }
        try await store.set("doubt:m1", KeyState.completed(wamid: "wamid.2", at: clock.now()).encoded(), ttl: .seconds(86_400))
        let outcome = try await step.run(&redelivered, resending("worker-b"))
        guard case .finish(as: .duplicate, _) = outcome else {
            Issue.record("a duplicate of the resend, not a second `sent`: \(outcome)")
            return
        }
    }

    /// A resent attempt that goes in doubt in its turn and waits through the broker: its copy comes
    /// back with the attempt its delivery had (the broker's count), not the resend's. Settled, it
    /// still reports `sent` — the report of the attempt it replaced must not count for it.
    @Test func aResentSendInDoubtWaitingThroughTheBrokerIsReportedSent() async throws {
        var logger = Logger(label: "test.in-doubt")
        logger.logLevel = .critical
        let resending = StepContext(stepName: "idempotency", logger: logger, workerID: "worker-a", clock: clock, flow: FlowControl(clock: clock, logger: logger),
                                    inDoubt: InDoubtPolicy(window: .seconds(300), decision: .resend))
        var waiting = message()
        #expect(try await step.run(&waiting, resending) == .next)
        #expect(await step.holdInDoubt(&waiting, resending))
        clock.advance(by: .seconds(301))
        #expect(try await step.run(&waiting, resending) == .next, "sent again after the window")
        #expect(await step.holdInDoubt(&waiting, resending), "and in doubt again")
        var copy = Message(body: waiting.body, attempt: 1, carried: waiting.carried)
        try await store.set("doubt:m1", KeyState.completed(wamid: "wamid.2", at: clock.now()).encoded(), ttl: .seconds(86_400))
        let outcome = try await step.run(&copy, resending)
        guard case .alreadySent = outcome else {
            Issue.record("the only delivery of the resent attempt reports it sent: \(outcome)")
            return
        }
    }

    /// The delivery that does not report the settlement ends as a duplicate under `on_duplicate:
    /// dead_letter` too: the message was sent, and is never dead-lettered for it.
    @Test func theOtherDeliveryOfASettledSendIsNotDeadLettered() async throws {
        let strict = IdempotencyStep(store: store, key: try KeyTemplate("strict:{internalId}"), ttl: .seconds(86_400), lease: .seconds(120),
                                     onDuplicate: .deadLetter, onInFlight: .requeue, orphanAge: .seconds(11))
        var waiting = message()
        #expect(try await strict.run(&waiting, context()) == .next)
        #expect(await strict.holdInDoubt(&waiting, context()))
        var redelivered = message()
        guard case .wait = try await strict.run(&redelivered, context("worker-b")) else {
            Issue.record("the redelivered original waits on the send in doubt")
            return
        }
        try await store.set("strict:m1", KeyState.completed(wamid: "wamid.1", at: clock.now()).encoded(), ttl: .seconds(86_400))
        guard case .alreadySent = try await strict.run(&waiting, context()) else {
            Issue.record("the waiting copy reports the settlement")
            return
        }
        let outcome = try await strict.run(&redelivered, context("worker-b"))
        guard case .finish(as: .duplicate, _) = outcome else {
            Issue.record("a duplicate, not a dead letter: \(outcome)")
            return
        }
    }

    /// Two dead letters of one message in doubt, both replayed: the first is sent again, the second
    /// finds the first's fresh claim. The old code hit a preconditionFailure (the whole worker crashed).
    @Test func twoReplayedCopiesOfADeadLetteredSendInDoubtSendOnce() async throws {
        let since = clock.now()
        try await store.set("doubt:m1", KeyState.inDoubt(owner: "worker-x", since: since, attempt: 1).encoded(), ttl: .seconds(86_400))
        clock.advance(by: .seconds(600))
        let replayed = [ReplayNote.carriedKey: UTCTimestamp.format(clock.now())]
        var first = message(replayed)
        var second = message(replayed)
        #expect(try await step.run(&first, context()) == .next, "replayed after its window: sent again")
        let outcome = try await step.run(&second, context())
        guard case .requeue = outcome else {
            Issue.record("the second copy waits for the first: \(outcome)")
            return
        }
    }

    /// The stored attempt is input (another service, a hand edit): one past 64 bits' end overflowed
    /// counting the resend's attempt, and the worker trapped.
    @Test func aStoredAttemptBeyondAnyCountIsTakenAtTheMost() async throws {
        let stored = #"{"status":"in_doubt","owner":"worker-x","since":"\#(UTCTimestamp.format(clock.now()))","attempt":9223372036854775807}"#
        #expect(KeyState.decode(stored)?.attempt == .max, "the value reads as written")
        try await store.set("doubt:m1", stored, ttl: .seconds(86_400))
        clock.advance(by: .seconds(600))
        var copy = message([ReplayNote.carriedKey: UTCTimestamp.format(clock.now())])
        #expect(try await step.run(&copy, context()) == .next, "replayed after its window: sent again")
        #expect(copy.attempt == Delivery.attemptsRange.upperBound + 1)
    }

    /// A replay note from before the doubt (the message was replayed once, sent, and went in doubt
    /// again) decides nothing: `dead_letter` applies. The old code sent it again on every window.
    @Test func aReplayOlderThanTheDoubtDoesNotSendItAgain() async throws {
        let replayedAt = clock.now()
        clock.advance(by: .seconds(60))
        try await store.set("doubt:m1", KeyState.inDoubt(owner: "worker-x", since: clock.now(), attempt: 1).encoded(), ttl: .seconds(86_400))
        clock.advance(by: .seconds(600))
        var copy = message([ReplayNote.carriedKey: UTCTimestamp.format(replayedAt)])
        await #expect(throws: StepFailure.self) { try await step.run(&copy, context()) }
    }

    /// The hold could not mark the key (store down): it stays `processing` by this worker while its
    /// message waits in doubt. Another copy of the message on this worker, once that value is older
    /// than the orphan age: the old code took it over as an orphan (no message here held the key)
    /// and sent it again.
    @Test func anotherCopyDoesNotTakeOverTheUnmarkedClaimOfASendInDoubt() async throws {
        try await sendInDoubtNotMarked(id: "copy-takeover")
        clock.advance(by: .seconds(30))
        var copy = message(id: "copy-takeover")
        let outcome = try await step.run(&copy, context())
        guard case .requeue = outcome else {
            Issue.record("the copy finds the send in doubt in flight, and is not sent: \(outcome)")
            return
        }
        #expect(try await store.read("doubt:copy-takeover")?.value.contains(#""status":"in_doubt""#) == true, "not taken over: marked in doubt once the store answered")
    }

    /// As above, and a copy's claim failed meanwhile (the store went down under it): its claim is
    /// "lost", released once the store answers so another worker's retry need not wait out the
    /// lease. The old code released the send in doubt's unmarked value with it: the key was gone,
    /// and any copy claimed it and sent again.
    @Test func aLostClaimIsNotReleasedWhileItsKeyWaitsInDoubt() async throws {
        let step = IdempotencyStep(store: store, key: try KeyTemplate("doubt:{internalId}"), ttl: .seconds(86_400), lease: .seconds(120),
                                   onDuplicate: .ack, onInFlight: .requeue, orphanAge: .zero)
        var claimed = message(id: "lost-release")
        #expect(try await step.run(&claimed, context()) == .next)
        store.setAvailable(false)
        #expect(await step.holdInDoubt(&claimed, context()))
        var copy = message(id: "lost-release")
        await #expect(throws: StepFailure.self) { try await step.run(&copy, context()) }
        store.setAvailable(true)
        clock.advance(by: .seconds(30))
        var other = message(id: "lost-release-other")
        #expect(try await step.run(&other, context()) == .next, "a claim after the store is back releases due lost claims")
        #expect(try await store.read("doubt:lost-release")?.value.contains(#""status":"in_doubt""#) == true, "not released: marked in doubt once the store answered")
    }

    /// The hold could not mark the key (store down). Once the store answers again, the next claim of
    /// any message on this worker marks it, without waiting for its message's next look — meanwhile
    /// another worker's copy, past the lease, took the `processing` value over and sent it again.
    @Test func theStoreAnsweringAgainMarksAnUnmarkedSendInDoubtAtOnce() async throws {
        try await sendInDoubtNotMarked(id: "mark-at-once")
        var unrelated = message(id: "mark-at-once-other")
        #expect(try await step.run(&unrelated, context()) == .next)
        #expect(try await store.read("doubt:mark-at-once")?.value.contains(#""status":"in_doubt""#) == true, "marked by the first claim after the outage")
        clock.advance(by: .seconds(130))
        var copy = message(id: "mark-at-once")
        let outcome = try await step.run(&copy, context("worker-b"))
        guard case .wait(let wait) = outcome, wait.reason == .inDoubt else {
            Issue.record("another worker's copy past the lease waits in doubt, never takes the key over: \(outcome)")
            return
        }
    }
}
