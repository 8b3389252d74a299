/// What a source reports for `/health` and `/ready`.
public struct SourceStatus: Sendable, Equatable {
    /// Connected to its broker (or listening).
    public var connected: Bool
    /// Receiving messages now.
    public var consuming: Bool
    /// The last connection error, if not connected.
    public var error: String?

    public init(connected: Bool, consuming: Bool, error: String? = nil) {
        self.connected = connected
        self.consuming = consuming
        self.error = error
    }
}
