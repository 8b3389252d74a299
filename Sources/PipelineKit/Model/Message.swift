import Foundation

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
    /// After this the message must not be sent: the runtime sets it from the source's `max_age`,
    /// steps may bring it forward (a message's own `expiresAt`). Checked before every irreversible step.
    public var notAfter: Date?
    /// Short notes a step keeps with the message when it waits through the source (a send slot
    /// it reserved): the source stores them with the copy and hands them back on its return.
    public var carried: [String: String]
    /// Set by a step that lets other deliveries of this message end on this run's account (the
    /// idempotency step under `on_in_flight: ack` acknowledges a copy that finds this run's claim):
    /// should the delivery's connection be lost, the broker's redelivery of it may be gone that way,
    /// so what the run settles with — a retry's copy, a wait through the source, a dead letter — is
    /// published even then (a second copy is one the idempotency step deduplicates).
    public var outlivesItsDelivery = false
    /// The source lane the message came from (nil: the source has no lanes).
    public var lane: Lane?
    /// When the message first entered the system, when the source knows: within a lane, a sender's
    /// messages get their send slots in this order.
    public var firstSeen: Date?
    /// The message's trace (the span of its delivery) when tracing is on: steps put it on what
    /// they hand on (an event, a stored mapping) so the trace goes on there. Nil when off.
    public var trace: MessageTrace?

    public init(body: [UInt8], attempt: Int = 1, notAfter: Date? = nil, carried: [String: String] = [:], lane: Lane? = nil, firstSeen: Date? = nil) {
        self.body = body
        self.lane = lane
        self.firstSeen = firstSeen
        self.attempt = attempt
        self.notAfter = notAfter
        self.carried = carried
        self.values = MessageValues()
        switch Self.payload(of: body) {
        case .success(let parsed):
            payload = parsed
            parseError = nil
        case .failure(let error):
            payload = nil
            parseError = error.reason
        }
    }

    /// Why a body has no payload.
    public struct UnreadableBody: Error {
        public var reason: String
    }

    /// A body parsed as every message's is, within the limits below: a source that checks bodies
    /// before they become messages (a webhook's 400) refuses what its messages could not read.
    public static func payload(of body: [UInt8]) -> Result<JSONValue, UnreadableBody> {
        guard body.count <= maximumParsedBytes else {
            return .failure(UnreadableBody(reason: "body is \(body.count) bytes; bodies over \(maximumParsedBytes) bytes are not read"))
        }
        do {
            return .success(try JSONValue(parsing: body, nestingLimit: maximumNesting, valueLimit: valueLimit(forBytes: body.count)))
        } catch {
            return .failure(UnreadableBody(reason: error.isNestedTooDeep ? "body nests objects and arrays deeper than \(maximumNesting) levels"
                : error.hasTooManyValues ? "body holds more than \(valueLimit(forBytes: body.count)) JSON values (one per \(bytesPerValue) bytes beyond \(maximumValues))"
                : "body is not valid JSON: \(error)"))
        }
    }

    /// Bodies larger than this are not parsed at all (a step's own limit is lower).
    public static let maximumParsedBytes = 16 << 20
    /// Objects and arrays nested deeper than this make a body invalid.
    public static let maximumNesting = 64
    /// Bodies of more JSON values than this are invalid — unless they are long enough to hold
    /// more at `bytesPerValue` (a message request holds hundreds; a 3 MB webhook of statuses,
    /// about 20 bytes a value, 150,000): a value takes tens of bytes parsed for as few as two of
    /// text, and a 16 MiB `[0,0,…]` was 8 million of them, for each message in flight.
    public static let maximumValues = 100_000
    /// The fewest bytes of text a value takes on average in a body allowed more than `maximumValues`.
    public static let bytesPerValue = 8

    /// How many JSON values a body of `bytes` may hold.
    public static func valueLimit(forBytes bytes: Int) -> Int {
        max(maximumValues, bytes / bytesPerValue)
    }

    /// A top-level string field of the payload (for key templates and log metadata).
    public func field(_ name: String) -> String? {
        payload?[name]?.stringValue
    }

    /// The message's `internalId`, when it has one: every log line about the message carries it.
    public var internalID: String? { field("internalId") }

    /// What every log line about the message names (`MessageLogContext`): its `internalId` and,
    /// when its trace is not recorded, its trace id.
    var logContext: MessageLogContext {
        MessageLogContext(internalID: internalID, step: nil, traceID: trace?.unrecordedTraceID)
    }
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
