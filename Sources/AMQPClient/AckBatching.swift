/// How a consumer's thread sends the acks tasks queue: how long they wait for more to go out
/// together (`window`), and how long and how many of those behind a delivery still in flight
/// wait for it (`holdLimit`, `mostHeld`), to join one `multiple` frame when it is settled.
///
/// ```swift
/// let consumer = AMQPConsumer(urls: urls, queue: "whatsapp.outbound", prefetch: 64,
///                             ackBatching: .forConsumer(prefetch: 64, concurrency: 32), logger: logger, events: handle)
/// ```
public struct AckBatching: Sendable, Equatable {
    /// How long commands queued by tasks (acks, mostly) wait for more before the thread carries them out together.
    public var window: Duration
    /// How long an ack behind a delivery still in flight waits for it before going out on its own.
    public var holdLimit: Duration
    /// How many acks wait at once, at most: each keeps its delivery's prefetch slot taken.
    public var mostHeld: Int

    public init(window: Duration, holdLimit: Duration, mostHeld: Int) {
        self.window = window
        self.holdLimit = holdLimit
        self.mostHeld = mostHeld
    }

    /// Every command carried out as soon as the thread sees it, every ack sent then.
    public static let none = AckBatching(window: .zero, holdLimit: .zero, mostHeld: 0)

    /// The batching for a consumer whose `concurrency` tasks take its deliveries: on when the
    /// prefetch leaves a delivery waiting for every busy task, and at least eight (`prefetch` −
    /// `concurrency` ≥ max(`concurrency`, 8)), else `none`.
    ///
    /// - A 1 ms window: at thousands of acks a second, the acks of a batch go in one go, and the
    ///   broker reads them together, instead of a wake-up, a frame and a read per ack. Acks that
    ///   come less often than once a window go at once. A batched ack holds its prefetch slot up to
    ///   about 2 ms longer (`poll` counts whole milliseconds, rounded up); with too few spare (prefetch
    ///   2 and one task: 0.82–0.84 × the throughput in `scripts/bench builds`), the next delivery waits for it.
    /// - Acks behind a delivery in flight wait about 10 ms at most for it, half the spare deliveries at most,
    ///   so the other half still waits for the tasks. Messages finish out of order (a template takes a
    ///   Redis round trip more than a text); without the wait each such ack is a frame of its own,
    ///   which the broker handles as one settlement each.
    ///
    /// (Spare deliveries parked by a pacing wait are not work in hand: then a freed permit may wait out a held ack.)
    public static func forConsumer(prefetch: Int, concurrency: Int) -> AckBatching {
        let spare = prefetch - concurrency
        guard spare >= max(concurrency, 8) else { return .none }
        return AckBatching(window: .milliseconds(1), holdLimit: .milliseconds(10), mostHeld: spare / 2)
    }
}
