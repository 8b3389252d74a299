/// How a source that answers its senders (an HTTP endpoint) takes input, so `outbound-worker test`
/// can exercise it without a network: what it refuses before the pipeline, how a test input is
/// made authentic, and what it answers for an outcome.
public struct SourceAdmission: Sendable {
    /// Refused before the pipeline: the status answered and why.
    public struct Refusal: Sendable, Equatable {
        public var status: Int
        public var reason: String

        public init(status: Int, reason: String) {
            self.status = status
            self.reason = reason
        }
    }

    /// Whether the source refuses `body` with `headers` (names lowercased).
    public var check: @Sendable (_ body: [UInt8], _ headers: [String: String], _ settings: Settings) -> Refusal?
    /// The headers that make `body` authentic (a signature).
    public var authenticate: @Sendable (_ body: [UInt8], _ settings: Settings) -> [String: String]
    /// The status answered once the pipeline decided.
    public var respond: @Sendable (Decision) -> Int

    public init(check: @escaping @Sendable ([UInt8], [String: String], Settings) -> Refusal?, authenticate: @escaping @Sendable ([UInt8], Settings) -> [String: String],
                respond: @escaping @Sendable (Decision) -> Int) {
        self.check = check
        self.authenticate = authenticate
        self.respond = respond
    }
}
