@testable import IdempotencyPlugin
import Testing

/// What this worker knows of its sends in doubt, for the claims of other copies.
@Suite struct InDoubtWaitsTests {
    /// A send in doubt whose key could not be marked protects its `processing` value for as long
    /// as it is unmarked — not only while its message is seen waiting here (a minute): parked out
    /// of memory behind a backlog for longer, its value was taken over by another copy as an orphan.
    @Test func anUnmarkedKeyCountsAsWaitingUntilItIsMarked() {
        let waits = InDoubtWaits.shared
        let key = "doubt:unmarked-\(UInt64.random(in: 0...UInt64.max))"
        #expect(!waits.isWaiting(key))
        let store = ObjectIdentifier(InDoubtWaitsTests.self)
        waits.notMarked(key, in: store, claim: "c", owner: "w", attempt: 1, trace: nil)
        #expect(waits.isWaiting(key), "no wait seen here, yet its value is a send's claim")
        #expect(waits.unmarked(in: store, owner: "w").map(\.key) == [key])
        #expect(waits.unmarked(in: store, owner: "another").isEmpty && waits.unmarked(in: ObjectIdentifier(Int.self), owner: "w").isEmpty)
        waits.marked(key)
        #expect(!waits.isWaiting(key), "marked in_doubt: the store protects it from then on")
        waits.notMarked(key, in: store, claim: "c", owner: "w", attempt: 1, trace: nil)
        waits.end(key, resolution: "status")
        #expect(!waits.isWaiting(key), "settled")
    }
}
