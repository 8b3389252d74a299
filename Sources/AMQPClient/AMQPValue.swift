/// A value in an AMQP field table (message headers, queue arguments).
public indirect enum AMQPValue: Sendable, Equatable {
    case string(String)
    case bytes([UInt8])
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case timestamp(UInt64)
    case table(AMQPTable)
    case array([AMQPValue])
    case void

    /// The value as an integer, when it is one (any integer width).
    public var intValue: Int? {
        switch self {
        case .int(let value): Int(exactly: value)
        case .string(let text): Int(text)
        default: nil
        }
    }

    public var stringValue: String? {
        switch self {
        case .string(let text): text
        case .bytes(let bytes): String(decoding: bytes, as: UTF8.self)
        default: nil
        }
    }
}

/// An ordered AMQP field table.
public struct AMQPTable: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public var entries: [(key: String, value: AMQPValue)]

    public init(_ entries: [(key: String, value: AMQPValue)] = []) {
        self.entries = entries
    }

    public init(dictionaryLiteral elements: (String, AMQPValue)...) {
        entries = elements.map { (key: $0.0, value: $0.1) }
    }

    public subscript(key: String) -> AMQPValue? {
        get { entries.first { $0.key == key }?.value }
        set {
            if let index = entries.firstIndex(where: { $0.key == key }) {
                if let newValue { entries[index].value = newValue } else { entries.remove(at: index) }
            } else if let newValue {
                entries.append((key, newValue))
            }
        }
    }

    public static func == (lhs: AMQPTable, rhs: AMQPTable) -> Bool {
        lhs.entries.count == rhs.entries.count && zip(lhs.entries, rhs.entries).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

/// The basic properties of a message, kept whole so a dead letter carries the original's.
public struct AMQPProperties: Sendable, Equatable {
    public var contentType: String?
    public var contentEncoding: String?
    public var headers: AMQPTable
    public var deliveryMode: UInt8?
    public var priority: UInt8?
    public var correlationID: String?
    public var replyTo: String?
    public var expiration: String?
    public var messageID: String?
    public var timestamp: UInt64?
    public var type: String?
    public var userID: String?
    public var appID: String?

    public init(contentType: String? = nil, contentEncoding: String? = nil, headers: AMQPTable = AMQPTable(), deliveryMode: UInt8? = nil,
                priority: UInt8? = nil, correlationID: String? = nil, replyTo: String? = nil, expiration: String? = nil,
                messageID: String? = nil, timestamp: UInt64? = nil, type: String? = nil, userID: String? = nil, appID: String? = nil) {
        self.contentType = contentType
        self.contentEncoding = contentEncoding
        self.headers = headers
        self.deliveryMode = deliveryMode
        self.priority = priority
        self.correlationID = correlationID
        self.replyTo = replyTo
        self.expiration = expiration
        self.messageID = messageID
        self.timestamp = timestamp
        self.type = type
        self.userID = userID
        self.appID = appID
    }

    /// Persistent JSON, the properties `publish` gives new messages.
    public static let persistentJSON = AMQPProperties(contentType: "application/json", deliveryMode: 2)
}

/// One message delivered to a consumer.
public struct AMQPDelivery: Sendable {
    public var deliveryTag: UInt64
    /// Which connection delivered it: acks for an older connection are dropped (the broker redelivers).
    public var connectionGeneration: Int
    public var redelivered: Bool
    public var exchange: String
    public var routingKey: String
    public var body: [UInt8]
    public var properties: AMQPProperties
}
