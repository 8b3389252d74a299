/// Turns the acks a consumer thread collected since it last ran into as few
/// `basic.ack` frames as is safe.
///
/// Acks that, with everything settled before them, form an unbroken run from the
/// oldest unsettled delivery go out as one frame with `multiple`. An ack behind a
/// delivery still in flight goes out on its own, in the same batch: holding it back
/// until the gap closed would keep its prefetch slot taken for as long as the slow
/// message takes.
struct AckCoalescer {
    /// One `basic.ack` to send.
    struct Frame: Equatable {
        var tag: UInt64
        var multiple: Bool
    }

    /// The oldest delivery not known to be settled.
    private var oldestUnsettled: UInt64 = 1
    private var newestDelivered: UInt64 = 0
    /// Settled deliveries newer than `oldestUnsettled`.
    private var settledAhead: Set<UInt64> = []

    mutating func delivered(_ tag: UInt64) {
        newestDelivered = max(newestDelivered, tag)
    }

    /// A delivery settled by its own frame (a nack, or an ack sent alone).
    mutating func settledIndividually(_ tag: UInt64) {
        if tag >= oldestUnsettled { settledAhead.insert(tag) }
        advance()
    }

    /// The frames that acknowledge `tags`.
    mutating func acknowledge(_ tags: [UInt64]) -> [Frame] {
        var pending = Set(tags.filter { $0 >= oldestUnsettled })
        var runEnd: UInt64?
        while oldestUnsettled <= newestDelivered {
            if pending.remove(oldestUnsettled) != nil {
                runEnd = oldestUnsettled
            } else if settledAhead.remove(oldestUnsettled) == nil {
                break
            }
            oldestUnsettled += 1
        }
        var frames: [Frame] = []
        if let runEnd { frames.append(Frame(tag: runEnd, multiple: true)) }
        for tag in pending.sorted() {
            frames.append(Frame(tag: tag, multiple: false))
            settledAhead.insert(tag)
        }
        return frames
    }

    private mutating func advance() {
        while oldestUnsettled <= newestDelivered, settledAhead.remove(oldestUnsettled) != nil {
            oldestUnsettled += 1
        }
    }
}
