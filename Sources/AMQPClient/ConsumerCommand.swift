/// A request to a consumer's thread, queued by any task and carried out on the consumer's connection.
enum ConsumerCommand: Equatable, Sendable {
    case ack(UInt64, generation: Int)
    case nack(UInt64, generation: Int, requeue: Bool)
    case pause
    case resume
    case stopIntake

    /// A batch that failed: the error that ends the connection, and the commands not carried out.
    struct Failure {
        var error: AMQPError
        /// The failed command and every one after it, in order (after a failed flush, the acks it
        /// held first), to be queued again in front of newer ones. Acks and nacks among them are void
        /// on the next connection (`carriedOver`); what matters is that no pause, resume or stopIntake is lost.
        var notCarriedOut: [ConsumerCommand]
    }

    /// Whether carrying it out waits for the broker's answer (a cancel or a consume).
    var awaitsAnswer: Bool {
        switch self {
        case .ack, .nack: false
        case .pause, .resume, .stopIntake: true
        }
    }

    /// Carries out `batch` in order with `perform`, then `flush` (which sends the acks `perform`
    /// held back to coalesce them); the acks held so far are flushed before a command that awaits
    /// the broker's answer too (`flush(true)`: then also those waiting for a delivery in flight), so
    /// a failure there does not take them with it. A failure ends the connection and so the batch:
    /// nothing after the failed command is tried, and it comes back in the result (after a failed
    /// flush, with the acks it held) instead of being lost.
    static func run(_ batch: [ConsumerCommand], perform: (ConsumerCommand) throws(AMQPError) -> Void,
                    flush: (_ beforeAnswer: Bool) throws(AMQPError) -> Void) -> Failure? {
        var flushedUpTo = batch.startIndex
        func flushAcks(before end: Int) -> Failure? {
            do {
                try flush(end < batch.endIndex)
                flushedUpTo = end
                return nil
            } catch {
                let held = batch[flushedUpTo..<end].filter { if case .ack = $0 { true } else { false } }
                return Failure(error: error, notCarriedOut: held + batch[end...])
            }
        }
        for index in batch.indices {
            if batch[index].awaitsAnswer, let failure = flushAcks(before: index) { return failure }
            do {
                try perform(batch[index])
            } catch {
                return Failure(error: error, notCarriedOut: Array(batch[index...]))
            }
        }
        return flushAcks(before: batch.endIndex)
    }

    /// What a new connection starts from, given the commands still queued (oldest first):
    /// acks and nacks are dropped (they name deliveries of an older connection, which the broker
    /// delivers again); the last pause or resume decides whether the connection consumes and is
    /// used up; a stopIntake stays queued, to be carried out and reported on the new connection,
    /// which meanwhile does not consume.
    static func carriedOver(_ pending: [ConsumerCommand], paused: Bool) -> (pending: [ConsumerCommand], paused: Bool) {
        var paused = paused
        var kept: [ConsumerCommand] = []
        for command in pending {
            switch command {
            case .ack, .nack: continue
            case .pause: paused = true
            case .resume: paused = false
            case .stopIntake: kept.append(command)
            }
        }
        return (kept, paused || !kept.isEmpty)
    }
}
