/// Turns the acks a consumer thread collected into as few `basic.ack` frames as is safe.
///
/// Acks that, with everything settled before them, form an unbroken run from the oldest
/// unsettled delivery go out as one frame with `multiple`. An ack behind a delivery still in
/// flight waits for it to be settled, to join the run then; it goes out on its own once it
/// waited `AckBatching.holdLimit`, or when more than `AckBatching.mostHeld` wait (a waiting ack
/// keeps its delivery's prefetch slot taken: past that, the next delivery would wait for it).
struct AckCoalescer {
    /// One `basic.ack` to send.
    struct Frame: Equatable {
        var tag: UInt64
        var multiple: Bool
    }

    private let holdLimit: Duration
    private let mostHeld: Int
    /// The oldest delivery not known to be settled.
    private var oldestUnsettled: UInt64 = 1
    private var newestDelivered: UInt64 = 0
    /// Settled deliveries newer than `oldestUnsettled`.
    private var settledAhead: Set<UInt64> = []
    /// Acks not sent yet, each behind a delivery in flight, with when it came.
    private var held: [UInt64: ContinuousClock.Instant] = [:]
    /// When the ack held longest goes out on its own (nil: none is held).
    private(set) var nextRelease: ContinuousClock.Instant?

    init(_ batching: AckBatching = .none) {
        holdLimit = batching.holdLimit
        mostHeld = batching.mostHeld
    }

    mutating func delivered(_ tag: UInt64) {
        newestDelivered = max(newestDelivered, tag)
    }

    /// A delivery settled by its own frame (a nack). Acks held behind it join the run of the next `acknowledge`.
    mutating func settledIndividually(_ tag: UInt64) {
        if tag >= oldestUnsettled { settledAhead.insert(tag) }
        while oldestUnsettled <= newestDelivered, settledAhead.remove(oldestUnsettled) != nil {
            oldestUnsettled += 1
        }
    }

    /// The frames to send at `now`, the acks of `tags` having come (none: only those held long enough).
    mutating func acknowledge(_ tags: [UInt64], at now: ContinuousClock.Instant) -> [Frame] {
        for tag in tags where tag >= oldestUnsettled { held[tag] = now }
        var frames: [Frame] = []
        if let runEnd = settleRun() { frames.append(Frame(tag: runEnd, multiple: true)) }
        return frames + release(heldSince: now - holdLimit)
    }

    /// Every held ack, each on its own (the connection is about to close).
    mutating func releaseAll() -> [Frame] {
        release(heldSince: held.values.max() ?? .now)
    }

    /// Moves `oldestUnsettled` past the deliveries now settled; the last one acked here ends the run's frame.
    private mutating func settleRun() -> UInt64? {
        var runEnd: UInt64?
        while oldestUnsettled <= newestDelivered {
            if held.removeValue(forKey: oldestUnsettled) != nil {
                runEnd = oldestUnsettled
            } else if settledAhead.remove(oldestUnsettled) == nil {
                break
            }
            oldestUnsettled += 1
        }
        return runEnd
    }

    /// Frees the acks held since `cutoff` or before, and the longest held beyond `mostHeld`, each a frame.
    /// (Of those held equally long, the newest deliveries go first: the oldest are nearest to joining a run.)
    private mutating func release(heldSince cutoff: ContinuousClock.Instant) -> [Frame] {
        let longestHeld = held.values.min()
        guard let longestHeld, longestHeld <= cutoff || held.count > mostHeld else {
            nextRelease = longestHeld.map { $0 + holdLimit }
            return []
        }
        defer { nextRelease = held.values.min().map { $0 + holdLimit } }
        let longestHeldFirst = held.sorted { ($0.value, $1.key) < ($1.value, $0.key) }
        let due = max(longestHeldFirst.prefix { $0.value <= cutoff }.count, held.count - mostHeld)
        return longestHeldFirst.prefix(due).map(\.key).sorted().map { tag in
            held.removeValue(forKey: tag)
            settledAhead.insert(tag)
            return Frame(tag: tag, multiple: false)
        }
    }
}
