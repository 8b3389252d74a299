/// What happens to a message whose irreversible step may have taken effect without saying so
/// (its request written, the answer lost — "in doubt", SPEC 13): it waits for evidence (a status
/// that settles it as sent) for `window`, then `resend`s or is dead-lettered. Declared by the
/// irreversible step (`Step.inDoubtPolicy`), applied by the step that holds the message's claim.
public struct InDoubtPolicy: Sendable, Equatable {
    public enum Decision: String, Sendable, Equatable, CaseIterable {
        /// No evidence within the window means it was not accepted: send it once more.
        case resend
        /// Never risk a second copy: dead-letter it (an operator replays it).
        case deadLetter = "dead_letter"
    }

    public var window: Duration
    public var decision: Decision

    public init(window: Duration, decision: Decision) {
        self.window = window
        self.decision = decision
    }

    /// SPEC 13's defaults: 5 minutes, then resend.
    public static let standard = InDoubtPolicy(window: .seconds(300), decision: .resend)
}
