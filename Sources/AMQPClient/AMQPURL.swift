import Foundation

/// A broker address parsed from `amqp://user:password@host:port/vhost` (`amqps://` for TLS).
public struct AMQPURL: Sendable, Equatable, CustomStringConvertible {
    public var tls: Bool
    public var host: String
    public var port: Int
    public var user: String
    public var password: String
    public var virtualHost: String
    /// For `amqps://`: how the broker is checked.
    public var tlsOptions = AMQPTLSOptions()

    /// Parses a URL; the vhost is percent-decoded (`%2F` is `/`), an empty path is `/`.
    public init(_ text: String) throws(AMQPError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme?.lowercased(), scheme == "amqp" || scheme == "amqps" else {
            throw .configuration("not an AMQP URL (amqp://user:password@host:5672/vhost): \(Self.masked(text))")
        }
        tls = scheme == "amqps"
        host = components.host.flatMap { $0.isEmpty ? nil : $0 } ?? "localhost"
        port = components.port ?? (tls ? 5671 : 5672)
        user = components.user?.removingPercentEncoding ?? "guest"
        password = components.password?.removingPercentEncoding ?? "guest"
        let path = components.percentEncodedPath
        if path.isEmpty || path == "/" {
            virtualHost = "/"
        } else {
            virtualHost = String(path.dropFirst()).removingPercentEncoding ?? String(path.dropFirst())
        }
    }

    /// The URL with its password hidden, for logs and errors.
    public var description: String {
        "\(tls ? "amqps" : "amqp")://\(user):***@\(host):\(port)/\(virtualHost.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? virtualHost)"
    }

    static func masked(_ text: String) -> String {
        guard let at = text.lastIndex(of: "@"), let schemeEnd = text.range(of: "://"), let colon = text[schemeEnd.upperBound..<at].firstIndex(of: ":") else { return text }
        return String(text[..<colon]) + ":***" + text[at...]
    }
}

/// Why an AMQP operation failed.
public enum AMQPError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A URL or setting is wrong.
    case configuration(String)
    /// The broker refused the login.
    case authentication(String)
    /// The TLS handshake or the certificate check failed (a wrong CA, host name or client certificate).
    case tls(String)
    /// The connection could not be made or was lost.
    case connection(String)
    /// The broker closed the channel or connection with an error (e.g. a queue argument mismatch).
    case broker(code: Int, text: String)
    /// A publish was not confirmed (nacked, or no confirm in time).
    case notConfirmed(String)
    /// A mandatory publish had no queue to go to (the broker returned it).
    case unroutable(String)
    /// The client was closed.
    case closed

    /// Whether trying the same again cannot succeed: a refusal by the broker (access, a missing
    /// exchange, a precondition), no route, wrong credentials or configuration.
    public var isPermanent: Bool {
        switch self {
        case .configuration, .authentication, .tls, .unroutable: true
        case .broker(let code, _): [403, 404, 406, 530].contains(code)
        case .connection, .notConfirmed, .closed: false
        }
    }

    /// The login or the TLS check failed, so a worker starting up stops with this error instead
    /// of retrying. (The publisher reports `.tls` only once it is definite: before its first
    /// connection, after several attempts through every URL; later it is a connection problem.)
    public var isRefusedIdentity: Bool {
        switch self {
        case .authentication, .tls: true
        default: false
        }
    }

    public var description: String {
        switch self {
        case .configuration(let text): "configuration: \(text)"
        case .authentication(let text): "login refused: \(text)"
        case .tls(let text): "tls: \(text)"
        case .connection(let text): "connection: \(text)"
        case .broker(let code, let text): "broker error \(code): \(text)"
        case .notConfirmed(let text): "publish not confirmed: \(text)"
        case .unroutable(let text): "publish returned unroutable: \(text)"
        case .closed: "client closed"
        }
    }
}
