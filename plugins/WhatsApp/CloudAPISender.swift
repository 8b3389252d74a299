import Logging
import PipelineKit

/// Sends prepared requests to the Cloud API (or a stand-in) and returns the `wamid`.
public protocol CloudAPISender: Resource {
    /// The resource's settings: senders, tokens, limits.
    var configuration: CloudAPIConfiguration { get }
    /// Where send slots are shared with other workers, if anywhere.
    var slotStore: (any SlotStore)? { get }
    /// Sends `request` from `sender` with that sender's token; returns its wamid, or nil when the
    /// Cloud API accepted it (2xx) but the answer could not be read (SPEC 13: the wamid comes with
    /// the first status). Throws a classified failure (`.inDoubt` when it may have been accepted).
    func send(_ request: PreparedRequest, from sender: String, logger: Logger) async throws(CloudAPIFailure) -> String?
}

/// The `whatsapp_cloud_api` resource's settings, shared by the real client and the stand-in.
public enum CloudAPISettings {
    public static let schema = SettingsSchema([
        SettingSpec("base_url", .string, default: .string("https://graph.facebook.com"), "Cloud API base URL"),
        SettingSpec("api_version", .string, default: .string("v24.0"), "Graph API version (path segment)"),
        SettingSpec("phone_number_id", .string, default: .string(""), "sender phone number id; a message's `phoneNumberId` overrides it"),
        SettingSpec("access_token", .string, default: .string(""), secrecy: .secret, "bearer token of every sender without one of its own in `access_tokens`; never logged"),
        SettingSpec("access_tokens", .map(keys: .digits, values: .string), secrecy: .secret, "a token per sender phone number id (tenants); a sender-side failure then pauses only the senders of that token"),
        SettingSpec("timeout", .duration, default: .duration(.seconds(10)), "time limit of one request, connection included"),
        SettingSpec("max_connections", .integer(1...1024), default: .integer(64), "keep-alive HTTP/1.1 connections to the API at most (over HTTP/2, negotiated when the server offers it, one connection carries every request)"),
        SettingSpec("ca_file", .string, default: .string(""), "PEM file of the CA to trust for `https://` (a private CA or a proxy); empty: the system's trust store"),
        SettingSpec("dry_run", .boolean, default: .boolean(false), "log each request and answer with a synthetic wamid, without any network"),
        SettingSpec("throughput", .integer(1...100_000), default: .integer(80), "messages per second per sender phone number (Meta's limit; paced at 95 % of it)"),
        SettingSpec("throughput_by_sender", .map(keys: .digits, values: .integer(1...100_000)), "a limit per sender phone number id, over `throughput`"),
        SettingSpec("throughput_store", .resource(uses: "redis"), default: .string("redis"), "the Redis resource through which every worker shares each sender's limit (none: each worker paces alone)"),
        SettingSpec("pacing", .boolean, default: .boolean(true), "pace each sender at its throughput; false only where something else paces the requests"),
    ])

    /// Rules across the resource's settings.
    static func check(_ resource: ComponentDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
        let settings = resource.settings
        let hasDefault = settings.optionalString("access_token") != nil
        if !hasDefault, settings.map("access_tokens").isEmpty {
            return [.error(at: settings["access_token"]?.location ?? resource.location, "resource `\(resource.name)` (whatsapp_cloud_api) needs `access_token` or `access_tokens`")]
        }
        return []
    }
}

/// The `whatsapp_cloud_api` settings read once: who sends, with which token, how fast.
public struct CloudAPIConfiguration: Sendable {
    public var baseURL: String
    public var apiVersion: String
    public var defaultSender: String?
    public var accessToken: String?
    public var accessTokens: [String: String]
    public var timeout: Duration
    public var maxConnections: Int
    public var dryRun: Bool
    public var throughput: Int
    public var throughputBySender: [String: Int]
    /// A CA to trust for `https://` instead of the system's trust store.
    public var caFile: String?
    /// Whether `dispatch` paces senders (130429 and 131056 are handled either way).
    public var pacing: Bool

    public init(settings: Settings) throws {
        var base = try settings.string("base_url")
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        apiVersion = try settings.string("api_version")
        defaultSender = settings.optionalString("phone_number_id")
        accessToken = settings.optionalString("access_token")
        accessTokens = Dictionary(settings.map("access_tokens").compactMap { entry in entry.value.yamlScalar.map { (entry.name, $0) } }, uniquingKeysWith: { $1 })
        timeout = try settings.duration("timeout")
        maxConnections = try settings.integer("max_connections")
        caFile = settings.optionalString("ca_file")
        dryRun = try settings.boolean("dry_run")
        throughput = try settings.integer("throughput")
        pacing = try settings.boolean("pacing")
        throughputBySender = Dictionary(settings.map("throughput_by_sender").compactMap { entry in
            if case .integer(let limit) = entry.value { (entry.name, limit) } else { nil }
        }, uniquingKeysWith: { $1 })
    }

    /// The sender a request goes out from: its own, else the resource's.
    public func sender(of request: PreparedRequest) -> String? {
        request.phoneNumberID ?? defaultSender
    }

    /// The bearer token of `sender`.
    public func token(for sender: String) -> String? {
        accessTokens[sender] ?? accessToken
    }

    /// Messages per second `sender` may send.
    public func limit(for sender: String) -> Double {
        Double(throughputBySender[sender] ?? throughput)
    }

    /// What pauses when the Cloud API cannot be reached as configured (an untrusted certificate,
    /// a host that does not resolve, something else answering): every message, whatever its sender.
    public var configurationScope: PauseScope {
        PauseScope(key: "api:\(baseURL)", coversAll: true, cause: "configuration")
    }

    /// What pauses when `sender`'s token is rejected: every sender of that token (with one
    /// token for all, the whole pipeline) — and when the sender itself is rejected: that sender.
    public func pauseScopes(for sender: String) -> (token: PauseScope, sender: PauseScope) {
        let token = accessTokens[sender] != nil
            ? PauseScope(key: "token:\(sender)", coversAll: false)
            : PauseScope(key: "token:default", coversAll: accessTokens.isEmpty)
        return (token, PauseScope(key: "sender:\(sender)", coversAll: false))
    }
}
