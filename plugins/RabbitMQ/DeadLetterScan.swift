import AMQPClient

/// Reads `{queue}.dead` without consuming it (each letter is read unacknowledged and returns to
/// the queue when the connection closes), for `outbound-worker status`.
public struct DeadLetterScan: Sendable {
    /// A longer queue is not read: reading it would hold that many messages unacknowledged.
    public static let maximumScanned = 10_000

    public var urls: [AMQPURL]
    public var deadQueue: String

    public init(urls: [AMQPURL], deadQueue: String) {
        self.urls = urls
        self.deadQueue = deadQueue
    }

    /// What the scan found.
    public enum Result: Sendable {
        /// The letters whose `internalId` is one of those asked for, by id.
        case scanned(present: Int, letters: [String: [DeadLetteredMessage]])
        /// The queue holds more than `maximumScanned` letters.
        case tooLong(present: Int)
    }

    /// The dead letters of `ids`.
    public func letters(of ids: Set<String>) async throws -> Result {
        try await AMQPTransferSession.run(urls: urls) { session in
            try DeadLetterReaders.lock(deadQueue, in: session)
            let present = try session.messageCount(deadQueue)
            guard present <= Self.maximumScanned else { return .tooLong(present: present) }
            var found: [String: [DeadLetteredMessage]] = [:]
            for _ in 0..<present {
                guard let message = try session.get(deadQueue) else { break }
                let letter = DeadLetteredMessage(message)
                if let id = letter.internalId, ids.contains(id) { found[id, default: []].append(letter) }
            }
            return .scanned(present: present, letters: found)
        }
    }
}
