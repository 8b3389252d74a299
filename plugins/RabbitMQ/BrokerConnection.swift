import AMQPClient
import PipelineKit

/// The broker settings every component that talks to RabbitMQ shares: `url` (one or a list)
/// and `tls`, which applies to the `amqps://` ones.
///
/// ```swift
/// static let url = BrokerConnection.url("the broker the events go to")
/// static let schema = SettingsSchema(url, BrokerConnection.tls)
/// let urls = try BrokerConnection.urls(settings, url: url)
/// ```
public enum BrokerConnection {
    /// `url`: a broker URL, or a list tried in turn; by default `RABBITMQ_URL` (SPEC 3, 9).
    public static func url(_ summary: String) -> Setting<[String]> {
        Setting.urls("url", default: "amqp://guest:guest@localhost:5672/%2F", secrecy: .urlPassword, summary).orEnvironment("RABBITMQ_URL")
    }

    static let caFile = Setting.optionalString("ca_file", default: "", "PEM file of the CA that signed the broker's certificate; empty: the system's CA bundle")
    static let certFile = Setting.optionalString("cert_file", default: "", "client certificate (PEM), for a broker that asks for one")
    static let keyFile = Setting.optionalString("key_file", default: "", "the client certificate's private key (PEM)")
    static let verify = Setting.boolean("verify", default: true, "check the broker's certificate and host name; turn off only to diagnose")

    /// `tls: { ca_file, cert_file, key_file, verify }`; paths only, never key contents.
    public static let tls = Setting.object("tls", SettingsSchema(caFile, certFile, keyFile, verify),
                                           "for `amqps://` URLs: how the broker is checked and how the worker shows itself")

    /// The URLs of `url` (declared with `url(_:)`), each `amqps://` one with the options of `tls`.
    public static func urls(_ settings: Settings, url: Setting<[String]> = url("")) throws -> [AMQPURL] {
        let tls = settings[Self.tls]
        let options = AMQPTLSOptions(caFile: tls[caFile], certFile: tls[certFile], keyFile: tls[keyFile], verify: tls[verify])
        return try settings[url].map { text in
            var url = try AMQPURL(text)
            url.tlsOptions = options
            return url
        }
    }

    /// `cert_file` and `key_file` go together, and `tls` means something only with an `amqps://` URL.
    public static func check(_ component: ComponentDefinition, url: Setting<[String]>, owner: String) -> [Diagnostic] {
        guard component.settings.has(tls) else { return [] }
        let tls = component.settings[Self.tls]
        let location = component.settings.location(of: Self.tls) ?? component.location
        var diagnostics: [Diagnostic] = []
        if (tls[certFile] == nil) != (tls[keyFile] == nil) {
            let given = (tls[certFile] != nil ? tls.location(of: certFile) : tls.location(of: keyFile)) ?? location
            diagnostics.append(.error(at: given, "`tls` of \(owner): `cert_file` and `key_file` go together (a client certificate needs its key)"))
        }
        let configured = tls[caFile] != nil || tls[certFile] != nil || tls[keyFile] != nil
        if configured, !component.settings[url].contains(where: { $0.lowercased().hasPrefix("amqps://") }) {
            diagnostics.append(.warning(at: location, "`tls` of \(owner) applies to `amqps://` URLs only, and none is given"))
        }
        return diagnostics
    }
}
