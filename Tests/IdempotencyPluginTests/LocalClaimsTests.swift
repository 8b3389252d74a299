@testable import IdempotencyPlugin
import Testing

/// The claims of this worker whose answer was lost, to be released once the store answers again.
@Suite struct LocalClaimsTests {
    /// The records knew the worker, not the store: another pipeline's store (another Redis, or a
    /// reload's) answered that it held no such value, and the record was dropped — the claim then
    /// held its key for the whole lease (review).
    @Test func aLostClaimIsDueOnlyInTheStoreItWasMadeIn() {
        let claims = LocalClaims.shared
        let key = "lost:store-\(UInt64.random(in: 0...UInt64.max))"
        let worker = "w-\(UInt64.random(in: 0...UInt64.max))"
        let made = LocalClaims.Claimant(worker: worker, store: ObjectIdentifier(LocalClaimsTests.self))
        let elsewhere = LocalClaims.Claimant(worker: worker, store: ObjectIdentifier(Int.self))
        claims.lost(key, owner: made, releaseAfter: .zero)
        #expect(claims.dueLost(owner: elsewhere).isEmpty, "not another store's to release")
        #expect(claims.dueLost(owner: made) == [key])
        claims.settleLost(key, owner: elsewhere)
        #expect(claims.dueLost(owner: made) == [key], "settled elsewhere, still due where it was made")
        claims.settleLost(key, owner: made)
        #expect(claims.dueLost(owner: made).isEmpty)
    }
}
