/// One message travelling through a pipeline: the delivered bytes, its parsed JSON,
/// and typed values that steps hand to later steps.
public struct Message: Sendable {
    /// The body as delivered.
    public let body: [UInt8]
    /// Deliveries made so far, this one included (1 on first delivery).
    public var attempt: Int
    /// The body parsed as JSON, or nil when it is not JSON.
    public let payload: JSONValue?
    /// Why the body is not JSON, when it is not.
    public let parseError: String?
    /// Values set by steps for later steps (the validated request, the wamid, …).
    public var values: MessageValues

    public init(body: [UInt8], attempt: Int = 1) {
        self.body = body
        self.attempt = attempt
        self.values = MessageValues()
        do {
            self.payload = try JSONValue(parsing: body)
            self.parseError = nil
        } catch {
            self.payload = nil
            self.parseError = "body is not valid JSON: \(error)"
        }
    }

    /// A top-level string field of the payload (for key templates and log metadata).
    public func field(_ name: String) -> String? {
        payload?[name]?.stringValue
    }

    /// The message's `internalId`, when it has one: every log line about the message carries it.
    public var internalID: String? { field("internalId") }
}

/// A typed slot in `MessageValues`, declared by the plugin that writes it.
public protocol MessageValueKey {
    associatedtype Value: Sendable
}

/// Typed storage on a message, keyed by `MessageValueKey` types.
public struct MessageValues: Sendable {
    private var storage: [ObjectIdentifier: any Sendable] = [:]

    public init() {}

    public subscript<Key: MessageValueKey>(key: Key.Type) -> Key.Value? {
        get { storage[ObjectIdentifier(key)] as? Key.Value }
        set { storage[ObjectIdentifier(key)] = newValue }
    }
}
