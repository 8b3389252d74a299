/// A value one step leaves on the message for later ones (`StepPlugin.provides`/`requires`): the
/// typed key it is stored under, and the name `check` gives it in diagnostics.
///
/// ```swift
/// extension StepValue {
///     static let request = StepValue(PreparedRequestKey.self, "request")
/// }
/// // StepPlugin(name: "dispatch", …, requires: [.request], …)
/// ```
public struct StepValue: Sendable, Hashable, CustomStringConvertible {
    private let key: ObjectIdentifier
    /// What `check` calls it: `step dispatch needs request, which no earlier step provides`.
    public let name: String

    public init<Key: MessageValueKey>(_ key: Key.Type, _ name: String) {
        self.key = ObjectIdentifier(key)
        self.name = name
    }

    public var description: String { name }
}
