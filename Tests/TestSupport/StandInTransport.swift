import HummingbirdCore
import HummingbirdHTTP2
import HummingbirdTLS
import NIOSSL

/// How a Cloud API stand-in is reached: plain HTTP/1.1 (`http://127.0.0.1:…`), or over TLS
/// with a certificate and key (PEM files; `https://localhost:…`), HTTP/1.1 only or offering
/// HTTP/2 through ALPN as graph.facebook.com does. Shared by the tests' stand-in and the benchmarks'.
public enum StandInTransport: Sendable, CustomStringConvertible {
    case plain
    case tls(certificate: String, key: String, http2: Bool)

    /// The Hummingbird server for this transport.
    public func server() throws -> HTTPServerBuilder {
        guard case .tls(let certificate, let key, let http2) = self else { return .http1() }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMFile(certificate).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: key, format: .pem)))
        tls.applicationProtocols = http2 ? ["h2", "http/1.1"] : ["http/1.1"]
        return http2 ? try .http2Upgrade(tlsConfiguration: tls) : try .tls(.http1(), tlsConfiguration: tls)
    }

    /// The base URL of a stand-in listening on `port` (the test certificate names localhost).
    public func baseURL(port: Int) -> String {
        if case .tls = self { return "https://localhost:\(port)" }
        return "http://127.0.0.1:\(port)"
    }

    public var description: String {
        switch self {
        case .plain: "HTTP/1.1"
        case .tls(_, _, let http2): http2 ? "TLS, HTTP/2" : "TLS, HTTP/1.1"
        }
    }
}
