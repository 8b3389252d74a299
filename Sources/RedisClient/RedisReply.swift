/// A Redis reply, copied out of hiredis's reply object.
public enum RedisReply: Sendable, Equatable {
    case bulk([UInt8])
    case status(String)
    case integer(Int)
    case array([RedisReply])
    case null
    case error(String)

    /// A bulk or status reply as text.
    public var string: String? {
        switch self {
        case .bulk(let bytes): String(decoding: bytes, as: UTF8.self)
        case .status(let text): text
        default: nil
        }
    }

    public var integer: Int? {
        if case .integer(let value) = self { return value }
        return nil
    }
}

/// Why a Redis command did not get an answer, or got an error answer.
public enum RedisError: Error, Sendable, Equatable, CustomStringConvertible {
    /// No connection could be made, or the connection broke or timed out: the server is unavailable.
    case unavailable(String)
    /// The server refused the credentials or database.
    case authentication(String)
    /// The server answered with an error.
    case server(String)

    public var description: String {
        switch self {
        case .unavailable(let reason): "redis unavailable: \(reason)"
        case .authentication(let reason): "redis refused the credentials: \(reason)"
        case .server(let reason): "redis error: \(reason)"
        }
    }
}
