/// How an `amqps://` connection checks the broker and shows itself.
public struct AMQPTLSOptions: Sendable, Equatable {
    /// The CA bundle that signed the broker's certificate; nil: the system's.
    public var caFile: String?
    /// A client certificate and its key (PEM), for brokers that ask for one.
    public var certFile: String?
    public var keyFile: String?
    /// Check the broker's certificate and host name (turn off only to diagnose).
    public var verify: Bool

    public init(caFile: String? = nil, certFile: String? = nil, keyFile: String? = nil, verify: Bool = true) {
        self.caFile = caFile
        self.certFile = certFile
        self.keyFile = keyFile
        self.verify = verify
    }

    /// The system CA bundles tried when no `caFile` is given.
    static let systemBundles = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt"]
}
