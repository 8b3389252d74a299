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

    /// The reasons the runtime reports from the start (`outbound_messages_waiting{reason}` at 0).
    public static let known: [WaitReason] = [.throughput, .pairHold, .paused, .inDoubt]

    public var description: String { rawValue }
}
