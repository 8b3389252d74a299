/// What a source notes on a message an operator replayed (from the dead letters), for the steps:
/// `Message.carried[ReplayNote.carriedKey]` holds when. The idempotency step sends a message
/// whose send was left in doubt and dead-lettered once more when it is replayed (SPEC 13).
public enum ReplayNote {
    public static let carriedKey = "replayed-at"
}
