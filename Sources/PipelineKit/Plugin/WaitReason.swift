/// Why a message waits, for metrics (`outbound_messages_waiting{reason}`) and pipeline tests.
public struct WaitReason: RawRepresentable, Sendable, Hashable, CustomStringConvertible {
    public var rawValue: String
    public init(rawValue: String) { self.rawValue = rawValue }

    /// Its sender's send rate.
    public static let throughput = WaitReason(rawValue: "throughput")
    /// A hold on the sender–recipient pair after the receiving side limited it.
    public static let pairHold = WaitReason(rawValue: "pair_hold")
    /// Its sender is paused after a sender-side failure.
    public static let paused = WaitReason(rawValue: "paused")
    /// Its send is in doubt (the answer was lost): waiting for a status to settle it, or for the window to end.
    public static let inDoubt = WaitReason(rawValue: "in_doubt")

    /// Its template is paused (SPEC 15).
    public static let templatePaused = WaitReason(rawValue: "template_paused")
    /// Meta declined it for the recipient's marketing limit: it goes once more later (`131049`).
    public static let marketingLimit = WaitReason(rawValue: "marketing_limit")
    /// Its sender sent too much marketing (`131048`).
    public static let spamLimit = WaitReason(rawValue: "spam_limit")

    /// Its portfolio reached its messaging limit (unique recipients per 24 h).
    public static let messagingLimit = WaitReason(rawValue: "messaging_limit")

    /// The reasons the runtime reports from the start (`outbound_messages_waiting{reason}` at 0).
    public static let known: [WaitReason] = [.throughput, .pairHold, .paused, .inDoubt, .templatePaused, .marketingLimit, .spamLimit, .messagingLimit]

    public var description: String { rawValue }
}
