/// What a message that a step ended early is called: in `outbound_messages_total{outcome}`, in
/// its outcome event (`outbound.<label>`) and in pipeline tests (`expect: { outcome: … }`).
///
/// A plugin names its own and lists it in `StepPlugin.outcomes`:
///
/// ```swift
/// extension OutcomeLabel {
///     static let suppressed: OutcomeLabel = "suppressed"
/// }
/// // in the step:  return .finish(as: .suppressed, "recipient opted out")
/// ```
public struct OutcomeLabel: RawRepresentable, Sendable, Hashable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    public init(stringLiteral value: String) {
        self.init(rawValue: value)
    }

    /// The work was done already (the message was sent by an earlier delivery).
    public static let duplicate: OutcomeLabel = "duplicate"

    public var description: String { rawValue }
}
