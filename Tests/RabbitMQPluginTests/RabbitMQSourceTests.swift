import AMQPClient
import Foundation
import PipelineKit
import RabbitMQPlugin
import Synchronization
import Testing
import TestSupport

/// The `rabbitmq` source under the runtime's worker, against the real broker of `scripts/test`.
@Suite(.serialized) struct RabbitMQSourceTests {
    @Test func tenThousandMessagesRoundTripOnce() async throws {
        let harness = try SourceHarness()
        let step = RecordingStep()
        let running = try harness.worker("prefetch: 64\nconcurrency: 32\n", step)
        try await harness.inspector.publish(bodies(10_000, prefix: "rt"), to: harness.queue)
        try await poll("10,000 deliveries", timeout: .seconds(120)) { step.all.count >= 10_000 }
        try await poll("the queue to be empty and acknowledged") { try await harness.inspector.depth(harness.queue) == 0 }
        await running.stop()
        #expect(step.all.count == 10_000)
        #expect(step.distinctIDs.count == 10_000)
        #expect(try await harness.inspector.depth(harness.queue) == 0, "every message acknowledged")
        await harness.cleanUp(running.source)
    }

    /// The process may end as soon as `stop` returns: the acks still queued on the consumer's
    /// thread then were lost, and their messages came back to be reported again as duplicates.
    @Test func stopReturnsOnceTheLastAcksAreSentAndTheConnectionClosed() async throws {
        let harness = try SourceHarness()
        let source = try harness.source("prefetch: 100\n")
        try await harness.inspector.publish(bodies(100, prefix: "stop"), to: harness.queue)
        try await source.start()
        var events = source.events.makeAsyncIterator()
        var deliveries: [Delivery] = []
        while deliveries.count < 100, let event = await events.next() {
            if case .delivery(let delivery) = event { deliveries.append(delivery) }
        }
        for delivery in deliveries { #expect(await source.settle(delivery, .ack)) }
        source.stopIntake()
        await source.stop()
        #expect(!source.status().connected, "the consumer's connection is closed when stop returns")
        // Closed with its acks sent: none of the 100 went back to the queue.
        #expect(try await harness.inspector.depth(harness.queue) == 0)
        await harness.cleanUp(source)
    }

    @Test func retriesWaitTheBackoffAndCountAttemptsThenDeadLetter() async throws {
        let harness = try SourceHarness()
        let step = RecordingStep { message in
            if message.internalID == "doomed" || message.attempt < 3 { throw StepFailure(.transient, "503", code: 131000) }
            return .next
        }
        let running = try harness.worker("retry: { max_attempts: 3, backoff: [200ms] }\n", step)
        try await harness.inspector.publish([Array(#"{"internalId":"flaky"}"#.utf8), Array(#"{"internalId":"doomed"}"#.utf8)], to: harness.queue)
        try await poll("three deliveries of each") { step.count("flaky") == 3 && step.count("doomed") == 3 }
        let flaky = step.all.filter { $0.id == "flaky" }
        #expect(flaky.map(\.attempt) == [1, 2, 3])
        for (earlier, later) in zip(flaky, flaky.dropFirst()) {
            #expect(later.at - earlier.at >= .milliseconds(200), "retry came after \(later.at - earlier.at)")
        }
        let dead = try await harness.inspector.drain(running.source.topology.deadQueue, expecting: 1)
        await running.stop()
        let letter = try #require(dead.first)
        #expect(String(decoding: letter.body, as: UTF8.self) == #"{"internalId":"doomed"}"#)
        #expect(letter.properties.headers["x-error-step"] == .string("work"))
        #expect(letter.properties.headers["x-error"]?.stringValue?.contains("gave up after 3 attempts") == true)
        #expect(letter.properties.headers["x-attempts"]?.intValue == 3)
        #expect(letter.properties.headers["x-error-code"]?.intValue == 131000)
        #expect(letter.properties.headers["x-dead-lettered-at"]?.stringValue?.hasSuffix("Z") == true)
        #expect(letter.properties.contentType == "application/json")
        #expect(try await harness.inspector.depth(harness.queue) == 0)
        await harness.cleanUp(running.source)
    }

    @Test func requeueDoesNotUseAnAttemptAndHugeBodiesSurvive() async throws {
        let harness = try SourceHarness()
        let requeued = Atomic<Bool>(false)
        let step = RecordingStep { message in
            if message.body.count > 100_000 { throw StepFailure(.invalid, "body is \(message.body.count) bytes, at most 65536") }
            if message.internalID == "held", requeued.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                return .requeue(after: .milliseconds(100), reason: "in flight")
            }
            return .next
        }
        let running = try harness.worker("retry: { max_attempts: 2, backoff: [100ms] }\n", onError: .deadLetter, step)
        var huge = Array(#"{"internalId":"huge","pad":""#.utf8)
        huge += [UInt8](repeating: UInt8(ascii: "x"), count: 1 << 20)
        huge += Array(#""}"#.utf8)
        try await harness.inspector.publish([Array(#"{"internalId":"held"}"#.utf8), huge, [0xFF, 0xFE, 0xFD]], to: harness.queue)
        try await poll("held twice, huge and garbage once") { step.count("held") >= 2 && step.all.count >= 4 }
        // requeue republishes with the same attempt count: the second delivery is still attempt 1.
        #expect(step.all.filter { $0.id == "held" }.map(\.attempt) == [1, 1])
        let dead = try await harness.inspector.drain(running.source.topology.deadQueue, expecting: 1)
        await running.stop()
        #expect(dead.first?.body.count == huge.count)
        await harness.cleanUp(running.source)
    }

    @Test func brokerRestartMidStreamLosesNothing() async throws {
        let harness = try SourceHarness()
        let step = RecordingStep { _ in
            try? await Task.sleep(for: .milliseconds(2))
            return .next
        }
        let running = try harness.worker("prefetch: 32\nconcurrency: 8\n", step)
        try await harness.inspector.publish(bodies(3000, prefix: "restart"), to: harness.queue)
        try await poll("some progress") { step.all.count >= 300 }
        try TestServices.services("restart", "rabbitmq")
        try await poll("all 3000 ids after the restart", timeout: .seconds(120)) { step.distinctIDs.count == 3000 }
        try await poll("the queue drained") { try await harness.inspector.depth(harness.queue) == 0 }
        await running.stop()
        #expect(step.distinctIDs.count == 3000, "lost: \(3000 - step.distinctIDs.count)")
        await harness.cleanUp(running.source)
    }

    @Test func deadLetterIsConfirmedBeforeTheOriginalIsAcknowledged() async throws {
        let harness = try SourceHarness()
        let brokerStopped = Atomic<Bool>(false)
        let step = RecordingStep { message in
            if message.internalID == "victim", brokerStopped.compareExchange(expected: false, desired: true, ordering: .relaxed).exchanged {
                // The broker goes away between the decision and its publish + ack (once: the
                // redelivery of the unacknowledged original must not stop it again).
                try? TestServices.services("stop", "rabbitmq")
                Task.detached { try? TestServices.services("start", "rabbitmq") }
            }
            throw StepFailure(.invalid, "bad")
        }
        let running = try harness.worker(onError: .deadLetter, step)
        try await harness.inspector.publish([Array(#"{"internalId":"victim"}"#.utf8)], to: harness.queue)
        // (A read while the broker is still down is no answer: the poll's own time limit applies, not the read's 30 s.)
        try await poll("the broker back and the message dead-lettered", timeout: .seconds(90)) {
            (try? await harness.inspector.publisher.messageCount(running.source.topology.deadQueue)) ?? 0 >= 1
        }
        try await poll("the original acknowledged or redelivered and handled", timeout: .seconds(60)) {
            (try? await harness.inspector.publisher.messageCount(harness.queue)) == 0
        }
        await running.stop()
        let inDead = try await harness.inspector.publisher.messageCount(running.source.topology.deadQueue)
        #expect(inDead >= 1, "the message is in the dead-letter queue, never gone")
        #expect(step.all.allSatisfy { $0.id == "victim" })
        await harness.cleanUp(running.source)
    }

    /// A copy keeps the original's properties, but `user_id` names the original publisher,
    /// which the broker checks against the publishing connection: copied as it was, the worker's
    /// dead letter was refused (406) and retried forever.
    @Test func aCopyOfAMessageFromAnotherUserIsDeadLettered() async throws {
        let harness = try SourceHarness()
        let user = try SourceHarness.BrokerUser("copier")
        defer { user.delete() }
        let step = RecordingStep { _ in throw StepFailure(.invalid, "bad") }
        let running = try harness.worker(url: user.url, onError: .deadLetter, step)
        try await poll("the worker's queues declared") { (try? await harness.inspector.publisher.messageCount(running.source.topology.deadQueue)) != nil }
        var properties = AMQPProperties.persistentJSON
        properties.userID = "guest"
        try await harness.inspector.publisher.publish(routingKey: harness.queue, body: Array(#"{"internalId":"from-guest"}"#.utf8), properties: properties)
        let dead = try await harness.inspector.drain(running.source.topology.deadQueue, expecting: 1, timeout: .seconds(10))
        await running.stop()
        #expect(dead.count == 1, "the dead letter was published")
        #expect(dead.first?.properties.headers["x-original-user-id"] == .string("guest"))
        #expect(try await harness.inspector.depth(harness.queue) == 0)
        await harness.cleanUp(running.source)
    }

    /// A letter the broker dead-lettered itself keeps its publisher's `user_id`; `replay` run as
    /// another user was refused (406) at that letter, every time (audit).
    @Test func aLetterFromAnotherUserIsReplayed() async throws {
        let harness = try SourceHarness()
        let user = try SourceHarness.BrokerUser("replayer")
        defer { user.delete() }
        let running = try harness.worker(url: user.url, RecordingStep { _ in .next })
        let topology = running.source.topology
        try await poll("the worker's queues declared") { (try? await harness.inspector.publisher.messageCount(topology.deadQueue)) != nil }
        await running.stop()
        var properties = AMQPProperties.persistentJSON
        properties.userID = "guest"
        try await harness.inspector.publisher.publish(routingKey: topology.deadQueue, body: Array(#"{"internalId":"from-guest"}"#.utf8), properties: properties)
        let replay = DeadLetterReplay(urls: [try AMQPURL(user.url)], topology: topology, filter: DeadLetterFilter(), limit: nil, dryRun: false)
        let outcome = try await replay.run { _ in }
        #expect(outcome.moved == 1, "\(outcome)")
        let back = try await harness.inspector.drain(harness.queue, expecting: 1, timeout: .seconds(10))
        #expect(back.first?.properties.userID == nil)
        #expect(back.first?.properties.headers["x-original-user-id"] == .string("guest"))
        await harness.cleanUp(running.source)
    }

    /// A copy that can never be published (no queue, and declaring is off) goes back to the
    /// queue instead of being retried forever, and shutdown is not held up by it.
    @Test func aCopyThatCanNeverBePublishedDoesNotHoldUpShutdown() async throws {
        let harness = try SourceHarness()
        try await harness.inspector.publisher.declare(AMQPQueueDeclaration(name: harness.queue))
        let step = RecordingStep { _ in throw StepFailure(.invalid, "bad") }
        let running = try harness.worker("declare: false\nconcurrency: 1\nprefetch: 10\ndrain_timeout: 20s\n", onError: .deadLetter, step)
        try await harness.inspector.publish(bodies(5, prefix: "stuck"), to: harness.queue, declare: false)
        try await poll("the first message tried") { step.all.count >= 2 }
        let took = await running.stop()
        #expect(took < .seconds(5), "shutdown took \(took)")
        // The broker requeues what the closed connection held a moment after the close.
        let depth = try await harness.inspector.depth(harness.queue, settlingAt: 5)
        #expect(depth == 5, "every message back in the queue (depth \(depth))")
        await harness.inspector.delete([harness.queue])
    }

    /// A copy the broker does not confirm is published again every few seconds while its message keeps
    /// a place of `concurrency` — also after the consumer's connection was lost and the broker
    /// handed the message out again, which then never got a place (concurrency 1). A copy is
    /// published only while its original is held.
    @Test func aCopyIsNoLongerRetriedOnceItsOriginalWasHandedOutAgain() async throws {
        _ = TestMetricsSystem.shared
        let harness = try SourceHarness()
        let user = try SourceHarness.BrokerUser("unconfirmed")
        defer { user.delete() }
        let step = RecordingStep { _ in throw StepFailure(.invalid, "no such template") }
        let running = try harness.worker("concurrency: 1\n", url: user.url, onError: .deadLetter, step)
        // A full dead-letter queue that refuses what comes: every letter is nacked.
        let dead = running.source.topology.deadQueue
        do {
            try await poll("the worker's queues declared") { (try? await harness.inspector.publisher.messageCount(dead)) != nil }
            let policy = try await TestServices.applyPolicy(TestServices.refuseEveryPublish, to: dead)
            defer { TestServices.clearPolicy(policy) }
            let refusedBefore = TestMetricsSystem.counter("outbound_settle_failures_total")
            try await harness.inspector.publish(bodies(1, prefix: "unconfirmed"), to: harness.queue, declare: false)
            try await poll("its dead letter refused") { TestMetricsSystem.counter("outbound_settle_failures_total") > refusedBefore }
            #expect(try await harness.inspector.depth(dead) == 0)
            try user.closeConsumingConnections()
            try await poll("the message handed out again tried again", timeout: .seconds(20)) { step.count("unconfirmed-0") >= 2 }
            TestServices.clearPolicy(policy)
            let letters = try await harness.inspector.drain(dead, expecting: 1, timeout: .seconds(20))
            #expect(letters.count == 1)
        } catch {
            await running.stop()
            throw error
        }
        await running.stop()
        #expect(try await harness.inspector.depth(dead) == 0, "one letter, not one for each delivery")
        await harness.cleanUp(running.source)
    }

    /// With `declare: false` and a retry queue missing, every retry copy is refused and the message goes
    /// round about once a second, its attempt not counted: the start says so, naming each missing queue.
    @Test func withoutDeclaringTheStartNamesEveryQueueThatIsMissing() async throws {
        let harness = try SourceHarness()
        try await harness.inspector.publisher.declare(AMQPQueueDeclaration(name: harness.queue))
        let logs = CapturedLogs()
        let settings = try harness.settings("declare: false\nretry: { backoff: [1s, 10s] }\n")
        let source = try RabbitMQSource(settings: settings, worker: WorkerConfiguration(settings: settings), logger: logs.logger)
        try await source.start()
        let missing = [harness.queue + ".retry.1", harness.queue + ".retry.2", harness.queue + ".dead"]
        let named = { Set(logs.lines.filter { $0.message.contains("does not exist") }.compactMap { $0.metadata["queue"]?.description }) }
        do {
            try await poll("each missing queue named") { Set(missing).isSubset(of: named()) }
        } catch {
            source.stopIntake()
            await source.stop()
            throw error
        }
        source.stopIntake()
        await source.stop()
        #expect(logs.all.contains("retry copies to it are refused"), "\(logs.all)")
        #expect(logs.all.contains("dead letters are refused"), "\(logs.all)")
        #expect(named() == Set(missing), "the queue that exists is not named: \(logs.all)")
        await harness.inspector.delete([harness.queue])
    }

    @Test func afterShutdownNothingNewStartsAndPrefetchedMessagesGoBack() async throws {
        let harness = try SourceHarness()
        let step = RecordingStep { _ in
            try? await Task.sleep(for: .milliseconds(800))
            return .next
        }
        let running = try harness.worker("concurrency: 2\nprefetch: 20\n", step)
        try await harness.inspector.publish(bodies(20, prefix: "drain"), to: harness.queue)
        try await poll("two started") { step.all.count >= 2 }
        await running.stop()
        #expect(step.all.count == 2, "started after shutdown: \(step.all.count - 2)")
        let depth = try await harness.inspector.depth(harness.queue, settlingAt: 18)
        #expect(depth == 18, "the prefetched messages back in the queue (depth \(depth))")
        await harness.cleanUp(running.source)
    }

    @Test func waitingMessagesGoBackOnShutdownWithoutAnAttempt() async throws {
        let harness = try SourceHarness()
        let step = RecordingStep { _ in .wait(Wait(key: "sender", until: Date().addingTimeInterval(10), reason: .throughput)) }
        let running = try harness.worker("concurrency: 4\nprefetch: 20\nmax_park: 30s\n", step)
        try await harness.inspector.publish(bodies(10, prefix: "parked"), to: harness.queue)
        try await poll("ten waiting") { step.all.count >= 10 }
        let took = await running.stop()
        #expect(took < .seconds(3), "shutdown took \(took)")
        let back = try await harness.inspector.drain(harness.queue, expecting: 10)
        #expect(back.count == 10)
        #expect(back.allSatisfy { $0.properties.headers["x-attempts"] == nil }, "no attempt used")
        await harness.cleanUp(running.source)
    }

    @Test func aWaitLongerThanMaxParkGoesRoundTheDelayQueuesWithoutAnAttempt() async throws {
        let harness = try SourceHarness()
        let deadline = Date().addingTimeInterval(1.5)
        let due = ContinuousClock.now + .milliseconds(1500)
        let step = RecordingStep { _ in
            Date() < deadline ? .wait(Wait(key: "pair", until: deadline, reason: .pairHold)) : .next
        }
        let running = try harness.worker("max_park: 500ms\nretry: { backoff: [1s, 5s] }\n", step)
        try await harness.inspector.publish(bodies(1, prefix: "long"), to: harness.queue)
        try await poll("done", timeout: .seconds(10)) {
            guard step.all.count >= 3, Date() > deadline else { return false }
            return try await harness.inspector.depth(harness.queue) == 0
        }
        let seen = step.all
        // Waited 1.5 s: too long for memory, so it went round the delay queue, came back a little early and spent the rest parked.
        #expect(seen.count >= 3, "run on delivery, on its return and after the parked rest: \(seen.count)")
        #expect(seen.allSatisfy { $0.attempt == 1 }, "no attempt used")
        #expect((seen.last?.at ?? .now) >= due - .milliseconds(10), "sent when the wait ended, not before")
        await running.stop()
        await harness.cleanUp(running.source)
    }

    @Test func unreachableBrokerAndWrongPasswordAreReportedClearly() async throws {
        let harness = try SourceHarness()
        let unreachable = try harness.worker(url: "amqp://guest:guest@127.0.0.1:1/%2F", RecordingStep())
        try await Task.sleep(for: .milliseconds(300))
        let took = await unreachable.stop()
        #expect(took < .seconds(3), "a worker that never connected stops at once (took \(took))")

        let url = try AMQPURL(TestServices.rabbitURL)
        let consumer = AMQPConsumer(urls: [try AMQPURL("amqp://guest:wrong-password@\(url.host):\(url.port)/%2F")], queue: harness.queue, prefetch: 1, logger: SourceHarness.logger, events: { _ in })
        consumer.start()
        try await poll("a login error") { consumer.status.lastError != nil }
        let error = consumer.status.lastError ?? ""
        consumer.stop()
        #expect(error.contains("login refused"), "\(error)")
        #expect(!error.contains("wrong-password"))

        let refused = AMQPConsumer(urls: [try AMQPURL("amqp://guest:guest@127.0.0.1:1/%2F")], queue: harness.queue, prefetch: 1, logger: SourceHarness.logger, events: { _ in })
        refused.start()
        try await poll("a connection error") { refused.status.lastError != nil }
        let refusal = refused.status.lastError ?? ""
        refused.stop()
        #expect(refusal.contains("cannot connect to 127.0.0.1:1"), "\(refusal)")
    }

    @Test func aListOfBrokerURLsIsTriedInTurn() async throws {
        let harness = try SourceHarness()
        let step = RecordingStep()
        let running = try harness.worker("url: [\"amqp://guest:guest@127.0.0.1:1/%2F\", \"\(TestServices.rabbitURL)\"]\n", step)
        try await harness.inspector.publish(bodies(3, prefix: "failover"), to: harness.queue)
        try await poll("deliveries through the second URL") { step.all.count >= 3 }
        await running.stop()
        await harness.cleanUp(running.source)
    }

    @Test func quorumQueuesAreDeclaredWithADeliveryLimit() async throws {
        let harness = try SourceHarness()
        let step = RecordingStep()
        let running = try harness.worker("queue_type: quorum\ndelivery_limit: 3\n", step)
        try await poll("the source to declare its quorum queue") { running.source.status().connected }
        try await harness.inspector.publish(bodies(5, prefix: "quorum"), to: harness.queue, declare: false)
        try await poll("5 deliveries from the quorum queue") { step.all.count >= 5 }
        await running.stop()
        // Declaring it again as classic conflicts: proof that the broker made it a quorum queue.
        await #expect(throws: AMQPError.self) { try await harness.inspector.publisher.declare(AMQPQueueDeclaration(name: harness.queue)) }
        await harness.cleanUp(running.source)
    }

    /// A source queue that exists with other arguments (here classic, the pipeline says quorum)
    /// stops the start with the broker's 406: only retry queues are taken as they are.
    @Test func aSourceQueueWithOtherArgumentsStopsTheStart() async throws {
        let harness = try SourceHarness()
        try await harness.inspector.publisher.declare(AMQPQueueDeclaration(name: harness.queue))
        let source = try harness.source("queue_type: quorum\n")
        await #expect(throws: AMQPError.broker(code: 406, text: "")) {
            do {
                try await source.start()
            } catch AMQPError.broker(let code, _) {
                throw AMQPError.broker(code: code, text: "")
            }
        }
        await source.stop()
        await harness.cleanUp(source)
    }

    /// Earlier versions declared classic retry queues, whose dead-lettering back to the source
    /// is at most once. An empty one is replaced by a quorum queue that dead-letters at least once.
    @Test func anEmptyClassicRetryQueueOfAnEarlierVersionIsReplaced() async throws {
        let harness = try SourceHarness()
        let retryQueue = "\(harness.queue).retry.1"
        try await harness.inspector.publisher.declare(AMQPQueueDeclaration(name: retryQueue, arguments: [
            "x-message-ttl": .int(240), "x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string(harness.queue),
        ]))
        let step = RecordingStep { message in
            if message.attempt == 1 { throw StepFailure(.transient, "503", code: 131000) }
            return .next
        }
        let running = try harness.worker("retry: { max_attempts: 2, backoff: [200ms] }\n", step)
        try await poll("the source to declare its queues") { running.source.status().connected }
        let declared = try #require(running.source.topology.declarations.first { $0.name == retryQueue })
        // Declaring it with the new arguments is refused (406) unless it was replaced.
        _ = try await harness.inspector.publisher.declare(declared)
        try await harness.inspector.publish(bodies(3, prefix: "kept"), to: harness.queue, declare: false)
        try await poll("3 messages back from the new retry queue") { step.all.filter { $0.attempt == 2 }.count >= 3 }
        await running.stop()
        await harness.cleanUp(running.source)
    }

    /// A classic retry queue that still holds messages is used as it is, with a warning, instead
    /// of stopping the worker or losing what waits there; a retry through it still comes back.
    @Test func aClassicRetryQueueThatHoldsMessagesIsUsedAsItIs() async throws {
        let harness = try SourceHarness()
        let retryQueue = "\(harness.queue).retry.1"
        let old = AMQPQueueDeclaration(name: retryQueue, arguments: [
            "x-message-ttl": .int(600_000), "x-dead-letter-exchange": .string(""), "x-dead-letter-routing-key": .string(harness.queue),
        ])
        try await harness.inspector.publisher.declare(old)
        // A copy waiting there when the worker starts (a classic queue expires from its head only:
        // what comes later waits behind it, so it waits seconds, not minutes).
        var waiting = AMQPProperties.persistentJSON
        waiting.expiration = "4000"
        try await harness.inspector.publish(bodies(1, prefix: "waiting"), to: retryQueue, properties: waiting, declare: false)
        let step = RecordingStep { message in
            if message.attempt == 1 { throw StepFailure(.transient, "503", code: 131000) }
            return .next
        }
        let running = try harness.worker("retry: { max_attempts: 2, backoff: [200ms] }\n", step)
        try await poll("the source to declare the rest") { running.source.status().connected }
        // Declaring it with the old arguments succeeds only if it was left as it was.
        _ = try await harness.inspector.publisher.declare(old)
        try await harness.inspector.publish(bodies(3, prefix: "kept"), to: harness.queue, declare: false)
        try await poll("3 messages back from the classic retry queue") { step.all.filter { $0.attempt == 2 }.count >= 3 }
        await running.stop()
        await harness.cleanUp(running.source)
    }

    /// A dead letter is kept until it is replayed or removed: the original's `expiration` is not copied.
    @Test func aDeadLetterDoesNotInheritTheOriginalsExpiration() async throws {
        let harness = try SourceHarness()
        let running = try harness.worker(onError: .deadLetter, RecordingStep { _ in throw StepFailure(.invalid, "bad") })
        try await poll("the source to declare its queues") { running.source.status().connected }
        var properties = AMQPProperties.persistentJSON
        properties.expiration = "3000"
        try await harness.inspector.publish(bodies(3, prefix: "short-lived"), to: harness.queue, properties: properties, declare: false)
        let dead = running.source.topology.deadQueue
        try await poll("3 dead letters") { try await harness.inspector.depth(dead) == 3 }
        await running.stop()
        let letters = try await harness.inspector.drain(dead, expecting: 3)
        #expect(letters.count == 3)
        #expect(letters.allSatisfy { $0.properties.expiration == nil }, "a letter that expires vanishes from .dead")
        await harness.cleanUp(running.source)
    }

    /// A reason of any size is cut to 2,000 bytes in `x-error`: cut to 2,000 characters, one that
    /// quoted a character of 100,000 combining marks made a header larger than a frame, and its
    /// publish failed — the connection dropped, the copy retried for good, the message never dead.
    @Test func aDeadLetterWithAHugeReasonIsPublished() async throws {
        let harness = try SourceHarness()
        let reason = "bad: t" + String(repeating: "\u{301}", count: 100_000)
        let running = try harness.worker(onError: .deadLetter, RecordingStep { _ in throw StepFailure(.invalid, reason) })
        try await poll("the source to declare its queues") { running.source.status().connected }
        try await harness.inspector.publish(bodies(2, prefix: "huge-reason"), to: harness.queue, declare: false)
        let dead = running.source.topology.deadQueue
        try await poll("2 dead letters") { try await harness.inspector.depth(dead) == 2 }
        await running.stop()
        let letters = try await harness.inspector.drain(dead, expecting: 2)
        let errors = letters.compactMap { $0.properties.headers["x-error"]?.stringValue }
        #expect(errors.count == 2)
        #expect(errors.allSatisfy { $0.utf8.starts(with: "bad: t".utf8) }, "\(errors.map { $0.prefix(utf8Bytes: 80) })")
        #expect(errors.allSatisfy { $0.utf8.count <= 2000 }, "\(errors.map(\.utf8.count)) bytes")
        await harness.cleanUp(running.source)
    }

    @Test func urlsParseWithVhostsAndHidePasswords() throws {
        let url = try AMQPURL("amqp://user:p%40ss@broker.example:5673/%2F")
        #expect(url.host == "broker.example")
        #expect(url.port == 5673)
        #expect(url.password == "p@ss")
        #expect(url.virtualHost == "/")
        #expect(!url.description.contains("p@ss"))
        #expect(try AMQPURL("amqps://h/vh").tls)
        #expect(try AMQPURL("amqps://h/vh").port == 5671)
        #expect(try AMQPURL("amqp://h/vh").virtualHost == "vh")
        #expect(throws: AMQPError.self) { try AMQPURL("http://h/") }
    }

    @Test func topologyDeclaresRetryQueuesThatReturnToTheSource() {
        let topology = QueueTopology(queue: "q", type: .quorum, deliveryLimit: 7, retryDelays: [.seconds(5), .seconds(1), .seconds(5)], jitter: 0.2)
        let names = topology.declarations.map(\.name)
        #expect(names == ["q", "q.retry.1", "q.retry.2", "q.dead"])
        #expect(topology.declarations[0].arguments["x-delivery-limit"] == .int(7))
        #expect(topology.declarations[0].arguments["x-dead-letter-routing-key"] == .string("q.dead"))
        #expect(topology.declarations[1].arguments["x-message-ttl"] == .int(1200))
        #expect(topology.declarations[1].arguments["x-dead-letter-routing-key"] == .string("q"))
        for declaration in topology.declarations {
            #expect(declaration.arguments["x-queue-type"] == .string("quorum"), "\(declaration.name) is a quorum queue")
        }
        for declaration in topology.declarations.dropFirst().dropLast() {
            #expect(declaration.arguments["x-dead-letter-strategy"] == .string("at-least-once"), "\(declaration.name) dead-letters at least once")
            #expect(declaration.arguments["x-overflow"] == .string("reject-publish"))
        }
        #expect(topology.declarations[0].arguments.entries.map(\.key).sorted() == ["x-dead-letter-exchange", "x-dead-letter-routing-key", "x-delivery-limit", "x-queue-type"],
                "the source queue keeps v1's arguments: an upgrade redeclares it unchanged")
        let classic = QueueTopology(queue: "q", type: .classic, deliveryLimit: 7, retryDelays: [.seconds(1)], jitter: 0)
        #expect(classic.declarations[0].arguments.entries.isEmpty, "a classic source queue has no arguments")
        #expect(classic.declarations[2].arguments.entries.isEmpty, "nor has its dead queue")
        #expect(classic.declarations[1].arguments["x-queue-type"] == .string("quorum"), "a classic source's retry queue is a quorum queue too")
        #expect(classic.declarations[1].arguments["x-dead-letter-strategy"] == .string("at-least-once"), "every hop back to the source is at least once")
        #expect(classic.declarations[1].arguments["x-overflow"] == .string("reject-publish"))
        #expect(topology.route(delay: .seconds(1)) == ("q.retry.1", 1000))
        #expect(topology.route(delay: .milliseconds(1150)) == ("q.retry.1", 1150), "a jittered delay stays in its queue")
        #expect(topology.route(delay: .seconds(3)) == ("q.retry.2", 3000))
        #expect(topology.route(delay: .seconds(60)) == ("q.retry.2", 6000), "a wait beyond the longest queue comes back early")
    }
}
