import AMQPClient
import PipelineKit

/// The broker settings every component that talks to RabbitMQ shares: `url` (one or a list)
/// and `tls`, which applies to the `amqps://` ones.
///
/// ```swift
/// static let schema = SettingsSchema([
///     SettingSpec("url", .urlList, default: .string("amqp://localhost:5672/%2F"), secrecy: .urlPassword, "broker URL"),
///     BrokerConnection.tlsSetting,
/// ])
/// let urls = try BrokerConnection.urls(settings)
/// ```
public enum BrokerConnection {
    /// `tls: { ca_file, cert_file, key_file, verify }`; paths only, never key contents.
    public static let tlsSetting = SettingSpec("tls", .object(SettingsSchema([
        SettingSpec("ca_file", .string, default: .string(""), "PEM file of the CA that signed the broker's certificate; empty: the system's CA bundle"),
        SettingSpec("cert_file", .string, default: .string(""), "client certificate (PEM), for a broker that asks for one"),
        SettingSpec("key_file", .string, default: .string(""), "the client certificate's private key (PEM)"),
        SettingSpec("verify", .boolean, default: .boolean(true), "check the broker's certificate and host name; turn off only to diagnose"),
    ])), "for `amqps://` URLs: how the broker is checked and how the worker shows itself")

    /// The URLs of `url`, each `amqps://` one with the options of `tls`.
    public static func urls(_ settings: Settings) throws -> [AMQPURL] {
        let options = try tlsOptions(settings)
        return try settings.strings("url").map { text in
            var url = try AMQPURL(text)
            url.tlsOptions = options
            return url
        }
    }

    static func tlsOptions(_ settings: Settings) throws -> AMQPTLSOptions {
        guard settings["tls"] != nil else { return AMQPTLSOptions() }
        let tls = try settings.object("tls")
        return AMQPTLSOptions(caFile: tls.optionalString("ca_file"), certFile: tls.optionalString("cert_file"),
                              keyFile: tls.optionalString("key_file"), verify: try tls.boolean("verify"))
    }

    /// `cert_file` and `key_file` go together, and `tls` means something only with an `amqps://` URL.
    public static func check(_ component: ComponentDefinition, owner: String) -> [Diagnostic] {
        guard case .object(let entries)? = component.settings["tls"]?.value else { return [] }
        let tls = Settings(entries)
        let location = component.settings["tls"]?.location ?? component.location
        var diagnostics: [Diagnostic] = []
        if (tls.optionalString("cert_file") == nil) != (tls.optionalString("key_file") == nil) {
            let given = (tls.optionalString("cert_file") != nil ? tls["cert_file"] : tls["key_file"])?.location ?? location
            diagnostics.append(.error(at: given, "`tls` of \(owner): `cert_file` and `key_file` go together (a client certificate needs its key)"))
        }
        let urls = (try? component.settings.strings("url")) ?? []
        let configured = ["ca_file", "cert_file", "key_file"].contains { tls.optionalString($0) != nil }
        if configured, !urls.contains(where: { $0.lowercased().hasPrefix("amqps://") }) {
            diagnostics.append(.warning(at: location, "`tls` of \(owner) applies to `amqps://` URLs only, and none is given"))
        }
        return diagnostics
    }
}
