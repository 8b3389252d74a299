import AMQPClient
import Foundation
import Synchronization

/// Moves dead letters back to the source queue (`outbound-worker replay`).
///
/// Each move is one broker transaction — the copy's publish and the dead letter's ack commit
/// together — so a replay interrupted or killed at any point has moved each message once or
/// not at all, and running it again moves the rest. Letters that do not match stay in `.dead`,
/// in their order (they are read unacknowledged and return when the connection closes).
/// Only the letters present when it starts are looked at: a letter dead-lettered again while
/// it runs waits for the next replay.
public struct DeadLetterReplay: Sendable {
    public var urls: [AMQPURL]
    public var topology: QueueTopology
    /// The source's lanes: a letter goes back into its lane's queue.
    public var lanes: [RabbitMQSettings.LaneQueue]
    public var filter: DeadLetterFilter
    /// At most this many letters are moved (or listed).
    public var limit: Int?
    /// List what would move, move nothing.
    public var dryRun: Bool

    public init(urls: [AMQPURL], topology: QueueTopology, lanes: [RabbitMQSettings.LaneQueue] = [], filter: DeadLetterFilter, limit: Int?, dryRun: Bool) {
        self.urls = urls
        self.topology = topology
        self.lanes = lanes
        self.filter = filter
        self.limit = limit
        self.dryRun = dryRun
    }

    /// How a replay went.
    public struct Outcome: Sendable, Equatable {
        /// Letters in `.dead` when it started.
        public var present = 0
        public var scanned = 0
        public var matched = 0
        public var moved = 0
        /// Stopped early by `shouldStop`.
        public var interrupted = false
    }

    /// What the replay reports as it goes: each letter that matched (moved unless a dry run) and, every
    /// 1,000 letters looked at, the running totals.
    public enum Progress: Sendable {
        case matched(DeadLetteredMessage)
        case scanned(Outcome)
    }

    /// Runs the replay; `shouldStop` is asked before each letter (an interrupt ends it between two moves).
    public func run(shouldStop: @escaping @Sendable () -> Bool = { false }, progress: @escaping @Sendable (Progress) -> Void) async throws -> Outcome {
        try await AMQPTransferSession.run(urls: urls) { session in
            // Checked first, so a missing source queue fails before anything moves.
            _ = try session.messageCount(topology.queue)
            try DeadLetterReaders.lock(topology.deadQueue, in: session)
            var outcome = Outcome()
            outcome.present = try session.messageCount(topology.deadQueue)
            if !dryRun { try session.beginTransactions() }
            while outcome.scanned < outcome.present, outcome.matched < (limit ?? .max) {
                if shouldStop() {
                    outcome.interrupted = true
                    break
                }
                guard let message = try session.get(topology.deadQueue) else { break }
                outcome.scanned += 1
                let letter = DeadLetteredMessage(message)
                if filter.matches(letter) {
                    outcome.matched += 1
                    if !dryRun {
                        try move(letter, session)
                        outcome.moved += 1
                    }
                    progress(.matched(letter))
                }
                if outcome.scanned % 1000 == 0 { progress(.scanned(outcome)) }
            }
            return outcome
        }
    }

    private func move(_ letter: DeadLetteredMessage, _ session: AMQPTransferSession) throws {
        let queue = letter.replayQueue(in: topology, lanes: lanes)
        try session.publish(routingKey: queue, body: letter.message.body, properties: letter.replayProperties(at: Date()))
        try session.ack(letter.message)
        let commit = Result { () throws(AMQPError) -> [AMQPDelivery] in try session.commit() }
        if case .failure(.broker(406, let text)) = commit, text.contains("partial tx completion") {
            // The queue refused the copy (a length limit with reject-publish, say) and the broker applied the
            // letter's removal anyway: without this the letter was in neither queue.
            do {
                try session.putBack(letter.message, to: topology.deadQueue)
            } catch {
                // The last copy is this one: given to the operator rather than lost without a word.
                throw ReplayError(message: """
                    the broker refused the replayed copy for `\(queue)` (\(text)), and putting the letter back in `\(topology.deadQueue)` failed too \
                    (\(error)): it is in neither queue. Its body, to publish again (`outbound-worker publish`): \(String(decoding: letter.message.body, as: UTF8.self))
                    """)
            }
            throw ReplayError(message: "the broker refused the replayed copy for `\(queue)` (\(text): a length limit that rejects publishes?); that letter is back in `\(topology.deadQueue)`")
        }
        let returned = try commit.get()
        guard returned.isEmpty else {
            // The source queue vanished after the start: the letter goes back where it was.
            try session.publish(routingKey: topology.deadQueue, body: letter.message.body, properties: letter.message.properties)
            _ = try session.commit()
            throw ReplayError(message: "the broker had no queue `\(queue)` for a replayed copy (deleted while replaying?); that letter is back in `\(topology.deadQueue)`")
        }
    }
}

/// A replay that cannot go on.
public struct ReplayError: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
