@testable import AMQPClient
import Foundation
import PipelineKit
import RabbitMQPlugin
import Synchronization
import Testing
import TestSupport

/// A connection the broker closes is replaced at once, and consumer commands caught in a
/// failing batch are carried to the next connection instead of being lost.
@Suite(.serialized) struct BrokerClosedConnectionTests {
    /// After its connection.close RabbitMQ reads nothing but close-ok for 30 s: a worker that sent
    /// channel.close instead stopped consuming that long. Now it is back within the 5 s allowed,
    /// and what it had settled is not delivered again.
    @Test func aConnectionTheBrokerClosesIsReplacedWithinFiveSeconds() async throws {
        let harness = try SourceHarness()
        // The worker's own user, so the broker closes only the worker's connections.
        let user = try SourceHarness.BrokerUser("closed")
        defer { user.delete() }
        let step = RecordingStep()
        let running = try harness.worker(url: user.url, step)
        do {
            try await poll("the worker consuming") { running.source.status().consuming }
            try await harness.inspector.publish([Array(#"{"internalId":"before"}"#.utf8)], to: harness.queue, declare: false)
            try await poll("the message sent before the close handled") { step.count("before") == 1 }

            try user.closeConnections()
            // Timed from the command's return (its Erlang VM takes most of a second to start, before it closes anything).
            let closed = ContinuousClock.now
            try await harness.inspector.publish([Array(#"{"internalId":"after"}"#.utf8)], to: harness.queue, declare: false)
            try await poll("the message sent after the close handled", timeout: .seconds(5)) { step.count("after") >= 1 }
            let took = ContinuousClock.now - closed
            try await poll("the queue empty") { try await harness.inspector.depth(harness.queue) == 0 }
            await running.stop()
            #expect(took < .seconds(5), "consuming resumed \(took) after the close")
            #expect(step.count("before") == 1, "a message settled before the close is not delivered again")
            #expect(step.count("after") == 1)
        } catch {
            await running.stop()
            throw error
        }
        await harness.cleanUp(running.source)
    }

    /// Under `on_in_flight: ack` a delivery that finds another's claim is acknowledged as a copy in
    /// flight — the broker's redelivery of a message too, when its first delivery waits in memory
    /// as its connection is lost. That first run then retried (a transient failure): its copy was not
    /// published, the original's connection being gone, and the message was in no queue (audit).
    /// A run whose message outlives its delivery publishes its copy whatever became of it.
    @Test func aRetryWhoseRedeliveryEndedOnItsAccountIsPublished() async throws {
        let harness = try SourceHarness()
        let user = try SourceHarness.BrokerUser("outlived")
        defer { user.delete() }
        let step = ClaimingStep()
        let running = try harness.worker("retry: { max_attempts: 3, backoff: [200ms] }\n", url: user.url, step)
        do {
            try await poll("the worker consuming") { running.source.status().consuming }
            try await harness.inspector.publish([Array(#"{"internalId":"only"}"#.utf8)], to: harness.queue, declare: false)
            try await poll("the first delivery claimed and waiting") { step.calls == 1 }
            try user.closeConsumingConnections()
            try await poll("the redelivery acknowledged as a copy in flight") { step.calls == 2 }
            step.fail()
            try await poll("the first run's retry delivered", timeout: .seconds(15)) { step.retried }
            try await poll("the queue empty") { try await harness.inspector.depth(harness.queue) == 0 }
        } catch {
            await running.stop()
            throw error
        }
        await running.stop()
        await harness.cleanUp(running.source)
    }

    // MARK: A failing command batch

    /// Runs `batch`, failing at the first command `fails` picks; returns what ran, whether the
    /// acks were flushed, and the failure.
    private func run(_ batch: [ConsumerCommand], failing fails: (ConsumerCommand) -> Bool)
        -> (performed: [ConsumerCommand], flushed: Bool, failure: ConsumerCommand.Failure?) {
        var performed: [ConsumerCommand] = []
        var flushed = false
        let failure = ConsumerCommand.run(batch, perform: { (command: ConsumerCommand) throws(AMQPError) in
            if fails(command) { throw .connection("a socket error occurred") }
            performed.append(command)
        }, flush: { (_: Bool) throws(AMQPError) in
            flushed = true
        })
        return (performed, flushed, failure)
    }

    @Test func aBatchThatSucceedsGivesNothingBack() {
        let batch: [ConsumerCommand] = [.ack(1, generation: 1), .pause, .resume]
        let outcome = run(batch) { _ in false }
        #expect(outcome.performed == batch)
        #expect(outcome.flushed)
        #expect(outcome.failure == nil)
    }

    /// The commands after a failed one were lost with it: a lost `resume` left consumption paused
    /// for good, a lost `stopIntake` turned SIGTERM into a forced exit.
    @Test func aFailedCommandGivesBackItselfAndEveryCommandAfterIt() {
        let batch: [ConsumerCommand] = [.ack(1, generation: 1), .nack(2, generation: 1, requeue: true), .resume, .stopIntake]
        let outcome = run(batch) { if case .nack = $0 { true } else { false } }
        #expect(outcome.performed == [.ack(1, generation: 1)])
        #expect(!outcome.flushed, "nothing is tried on a connection that failed")
        #expect(outcome.failure?.error == .connection("a socket error occurred"))
        #expect(outcome.failure?.notCarriedOut == [.nack(2, generation: 1, requeue: true), .resume, .stopIntake])
    }

    @Test func aFailedFlushGivesBackTheAcks() {
        let batch: [ConsumerCommand] = [.ack(1, generation: 1), .nack(2, generation: 1, requeue: true), .ack(3, generation: 1)]
        var flushes = 0
        let failure = ConsumerCommand.run(batch, perform: { (_: ConsumerCommand) throws(AMQPError) in }, flush: { (_: Bool) throws(AMQPError) in
            flushes += 1
            throw .connection("a socket error occurred")
        })
        #expect(flushes == 1)
        #expect(failure?.notCarriedOut == [.ack(1, generation: 1), .ack(3, generation: 1)])
    }

    /// Acks held to be coalesced go out before a command that waits for the broker's answer, with
    /// those waiting for a delivery in flight: when that cancel or consume fails and ends the
    /// connection, they have reached the broker (with a batch window, a batch holds more acks, and
    /// all of them were lost with a failed pause).
    @Test func acksHeldBeforeAPauseGoOutBeforeIt() {
        var steps: [String] = []
        let batch: [ConsumerCommand] = [.ack(1, generation: 1), .ack(2, generation: 1), .pause, .ack(3, generation: 1)]
        let failure = ConsumerCommand.run(batch, perform: { (command: ConsumerCommand) throws(AMQPError) in
            if command == .pause { throw .connection("cancel timed out") }
            steps.append("\(command)")
        }, flush: { (beforeAnswer: Bool) throws(AMQPError) in
            steps.append(beforeAnswer ? "flush all" : "flush")
        })
        #expect(steps == ["ack(1, generation: 1)", "ack(2, generation: 1)", "flush all"])
        #expect(failure?.notCarriedOut == [.pause, .ack(3, generation: 1)])

        steps = []
        #expect(ConsumerCommand.run(batch, perform: { (command: ConsumerCommand) throws(AMQPError) in steps.append("\(command)") },
                                    flush: { (beforeAnswer: Bool) throws(AMQPError) in steps.append(beforeAnswer ? "flush all" : "flush") }) == nil)
        #expect(steps == ["ack(1, generation: 1)", "ack(2, generation: 1)", "flush all", "pause", "ack(3, generation: 1)", "flush"])
    }

    @Test func aFailedFlushBeforeAPauseGivesBackTheAcksNotFlushedAndThePause() {
        let batch: [ConsumerCommand] = [.ack(1, generation: 1), .pause, .ack(2, generation: 1)]
        let failure = ConsumerCommand.run(batch, perform: { (_: ConsumerCommand) throws(AMQPError) in }, flush: { (_: Bool) throws(AMQPError) in
            throw .connection("a socket error occurred")
        })
        #expect(failure?.notCarriedOut == [.ack(1, generation: 1), .pause, .ack(2, generation: 1)])
    }

    /// What a failed batch gave back, ahead of what was queued since, decides how the next
    /// connection starts; acks and nacks of the old connection are void.
    @Test func theCommandsGivenBackDecideHowTheNextConnectionStarts() {
        let givenBack = run([.ack(1, generation: 1), .resume], failing: { $0 == .resume }).failure?.notCarriedOut ?? []
        let resumed = ConsumerCommand.carriedOver(givenBack + [.ack(2, generation: 1)], paused: true)
        #expect(resumed.paused == false, "a resume given back makes the next connection consume")
        #expect(resumed.pending.isEmpty)

        let paused = ConsumerCommand.carriedOver([.pause, .nack(3, generation: 1, requeue: false)], paused: false)
        #expect(paused.paused, "a pause given back makes the next connection start paused")
        #expect(paused.pending.isEmpty)

        let stopping = ConsumerCommand.carriedOver([.stopIntake, .resume, .ack(4, generation: 1)], paused: false)
        #expect(stopping.paused, "with a stopIntake queued the next connection does not consume")
        #expect(stopping.pending == [.stopIntake], "the stopIntake stays queued, to be carried out and reported")

        #expect(ConsumerCommand.carriedOver([.pause, .resume], paused: false).paused == false, "the last of pause and resume wins")
        #expect(ConsumerCommand.carriedOver([.resume, .pause], paused: false).paused)
        #expect(ConsumerCommand.carriedOver([], paused: true).paused, "with nothing queued the state stays as it was")
    }
}

/// The idempotency step under `on_in_flight: ack`, as a test step: the first delivery claims (it
/// outlives its delivery) and waits until `fail`, then fails for a retry; a delivery without the
/// claim's note while the claim stands is acknowledged as a copy in flight; one with it is done.
final class ClaimingStep: Step {
    private let state = Mutex((calls: 0, failing: false, retried: false))

    var calls: Int { state.withLock { $0.calls } }
    var retried: Bool { state.withLock { $0.retried } }
    func fail() { state.withLock { $0.failing = true } }

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        let call = state.withLock { state in
            state.calls += 1
            if message.carried["claimed"] != nil { state.retried = true }
            return state.calls
        }
        if message.carried["claimed"] != nil { return .next }
        guard call == 1 else { return .finish(as: "duplicate", "in flight: claimed by the first delivery") }
        message.carried["claimed"] = "1"
        message.outlivesItsDelivery = true
        while !state.withLock({ $0.failing }) { try await Task.sleep(for: .milliseconds(20)) }
        throw StepFailure(.transient, "503")
    }
}
