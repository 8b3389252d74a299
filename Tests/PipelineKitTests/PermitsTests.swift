@testable import PipelineKit
import Synchronization
import Testing

/// Who a freed permit goes to: messages whose wait ended and new deliveries in turn, the most urgent lane first within each.
@Suite(.timeLimit(.minutes(1))) struct PermitsTests {
    /// Waiters queue behind the single permit in the order given; each release hands it on. Returns the order they got it in.
    private func grantOrder(_ waiters: [(name: String, rank: Int, resuming: Bool)]) async -> [String] {
        let permits = Permits(1)
        #expect(await permits.acquire())
        let granted = GrantLog()
        await withTaskGroup(of: Void.self) { group in
            for (index, waiter) in waiters.enumerated() {
                group.addTask {
                    guard await permits.acquire(rank: waiter.rank, resuming: waiter.resuming) else { return }
                    granted.names.withLock { $0.append(waiter.name) }
                    permits.release()
                }
                // Each one waiting before the next asks (their order among equals is the order they came in).
                await poll { permits.waiting == index + 1 }
            }
            permits.release()
        }
        return granted.names.withLock { $0 }
    }

    private final class GrantLog: Sendable {
        let names = Mutex<[String]>([])
    }

    private func poll(_ condition: () -> Bool) async {
        while !condition() { await Task.yield() }
    }

    @Test func aFreedPermitGoesToTheMostUrgentLaneFirstComeFirstServedWithinIt() async {
        let order = await grantOrder([("bulk", 2, false), ("normal 1", 1, false), ("urgent", 0, false), ("normal 2", 1, false)])
        #expect(order == ["urgent", "normal 1", "normal 2", "bulk"])
    }

    /// A bulk message whose turn has come does not wait behind every new urgent delivery: those only
    /// start their steps, while its send slot may be due now (before, a lane taking in its backlog kept
    /// every permit). New deliveries and resuming messages take turns, the most urgent first in each.
    @Test func messagesWhoseWaitEndedAndNewDeliveriesTakeTurns() async {
        let order = await grantOrder([("new urgent", 0, false), ("bulk back", 2, true), ("new normal", 1, false), ("urgent back", 0, true)])
        #expect(order == ["urgent back", "new urgent", "bulk back", "new normal"])
    }

    /// Nor does a new urgent delivery wait behind every parked message whose wait ended (a worker whose
    /// sends fill its permits): it goes after one.
    @Test func aNewUrgentDeliveryWaitsForOneResumingMessageAtMost() async {
        let order = await grantOrder((1...4).map { ("bulk back \($0)", 2, true) } + [("new urgent", 0, false)])
        #expect(order == ["bulk back 1", "new urgent", "bulk back 2", "bulk back 3", "bulk back 4"])
    }
}
