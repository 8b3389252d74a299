import PipelineKit

/// The key of a claim whose answer was lost, held in `LocalClaims` for as long as its message is in
/// this process: under `fail_open` the message goes on without its claim and may wait (pacing,
/// holds) for minutes, and a lost claim released meanwhile (`releaseLostClaims`) let a copy of the
/// message claim and send it while this one still waited to — a second send. Held until the last
/// copy of the message lets go of it (the run ends, or the step runs again).
final class UnansweredClaim: Sendable {
    let key: String

    /// Takes over the holding the claim's `LocalClaims.begin` made.
    init(holding key: String) {
        self.key = key
    }

    deinit {
        LocalClaims.shared.end(key)
    }
}

/// Where a message keeps the `UnansweredClaim` of its last claim.
enum UnansweredClaimKey: MessageValueKey {
    typealias Value = UnansweredClaim
}
