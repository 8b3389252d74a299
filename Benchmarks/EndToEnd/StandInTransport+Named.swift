import TestSupport

extension StandInTransport {
    /// The transport a bench option names (`plain`, `tls`, `h2`), with the test certificates of `tlsDirectory`.
    static func named(_ name: String, tlsDirectory tls: String) -> StandInTransport? {
        switch name {
        case "plain": .plain
        case "tls": .tls(certificate: "\(tls)/server.pem", key: "\(tls)/server.key", http2: false)
        case "h2": .tls(certificate: "\(tls)/server.pem", key: "\(tls)/server.key", http2: true)
        default: nil
        }
    }

    /// The CA file that trusts the stand-in's certificate, for the TLS transports.
    func caFile(tlsDirectory: String) -> String? {
        if case .tls = self { "\(tlsDirectory)/ca.pem" } else { nil }
    }
}
