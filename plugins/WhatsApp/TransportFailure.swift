import AsyncHTTPClient
import NIOCore
import NIOPosix
import NIOSSL
import PipelineKit

/// Words for what async-http-client reports when a request to the Cloud API fails without a complete
/// answer, and which of those failures are the configuration's (SPEC 6): an untrusted TLS
/// certificate, a host name that does not resolve, a port that does not speak TLS.
///
/// Whether the request was sent is not read from the error: `CloudAPIExchange` knows.
enum TransportFailure {
    /// What is wrong with the configuration when `error` — a failure to open a connection to
    /// `host` — says so; nil for the failures of the moment (refused, reset, timeout).
    ///
    /// async-http-client fails the request with the connection's error as is: NIOSSL's for TLS
    /// (`NIOSSLError.handshakeFailed` when BoringSSL rejects the certificate chain,
    /// `NIOSSLExtraError.failedToValidateHostname` when it names another host — fired by
    /// `NIOSSLHandler`, passed on by `TLSEventsHandler`), NIOPosix's `NIOConnectionError` when the
    /// host name does not resolve.
    static func configurationProblem(_ error: any Error, host: String, port: Int) -> String? {
        if let error = error as? NIOSSLError {
            switch error {
            case .handshakeFailed(.sslError(let stack)), .handshakeFailed(.unknownError(let stack)):
                // BoringSSL's reasons, e.g. "error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED".
                let reasons = stack.map(\.description)
                if reasons.contains(where: { $0.contains("CERTIFICATE_VERIFY_FAILED") }) { return untrusted(host) }
                if reasons.contains(where: { $0.contains("WRONG_VERSION_NUMBER") }) {
                    return "TLS: \(host):\(port) does not speak TLS: check the scheme and port of `base_url`"
                }
                return nil
            case .unableToValidateCertificate, .noCertificateToValidate:
                return untrusted(host)
            default:
                return nil
            }
        }
        if let error = error as? NIOSSLExtraError, error == .failedToValidateHostname {
            return "TLS: the certificate of \(host) is for another host name: check `base_url`"
        }
        #if canImport(Network)
        // Network.framework (the default event loops on Apple platforms): certificate chain invalid,
        // bad, unknown or no root, expired, not yet valid (<Security/SecureTransport.h>).
        if let error = error as? HTTPClient.NWTLSError, [-9807, -9808, -9812, -9813, -9814, -9815].contains(error.status) {
            return untrusted(host)
        }
        #endif
        if let resolver = unresolved(error) {
            return "DNS: the host name \(host) does not resolve (\(resolver)): check `base_url` and the resolver"
        }
        return nil
    }

    private static func untrusted(_ host: String) -> String {
        "TLS: the certificate of \(host) is not trusted (an unknown or private CA, self-signed, expired or not yet valid): "
            + "set `ca_file` to the CA that signed it (a private API or a TLS-inspecting proxy)"
    }

    /// The resolver's message when `error` is a host name that did not resolve: a DNS error
    /// (`dnsAError`, `dnsAAAAError`, with getaddrinfo both the same `SocketAddressError.UnknownHost`)
    /// and no connection attempted (with addresses of one family, the other's DNS error is kept too).
    static func unresolved(_ error: any Error) -> String? {
        if let error = error as? SocketAddressError.UnknownHost { return error.errorDescription }
        guard let error = error as? NIOConnectionError, error.connectionErrors.isEmpty,
              let dnsError = error.dnsAError ?? error.dnsAAAAError else { return nil }
        if let unknown = dnsError as? SocketAddressError.UnknownHost { return unknown.errorDescription }
        return String(describing: dnsError)
    }

    /// What happened, in words, to a request that failed after `timeout` (the whole request) or
    /// `connectTimeout` (opening a connection, or waiting for a free one), and whether it timed out.
    static func describe(_ error: any Error, timeout: Duration, connectTimeout: Duration) -> (words: String, timedOut: Bool) {
        guard let error = error as? HTTPClientError else { return (String(describing: error), false) }
        switch error {
        case .readTimeout, .deadlineExceeded:
            return ("no answer within \(DurationParser.format(timeout))", true)
        case .connectTimeout:
            return ("could not connect within \(DurationParser.format(connectTimeout))", true)
        case .tlsHandshakeTimeout:
            return ("no TLS handshake within \(DurationParser.format(connectTimeout))", true)
        case .getConnectionFromPoolTimeout:
            return ("no free connection within \(DurationParser.format(connectTimeout)), every one of `max_connections` busy", true)
        case .remoteConnectionClosed:
            return ("the Cloud API closed the connection", false)
        case .cancelled:
            return ("cancelled", false)
        default:
            return (String(describing: error), false)
        }
    }
}
