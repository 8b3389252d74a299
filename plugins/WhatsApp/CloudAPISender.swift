import Logging
import PipelineKit
import ValidatePlugin

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
    static let baseURL = Setting.string("base_url", default: "https://graph.facebook.com", "Cloud API base URL")
    static let apiVersion = Setting.string("api_version", default: "v24.0", "Graph API version (path segment)")
    static let phoneNumberID = Setting.optionalString("phone_number_id", default: "", "sender phone number id; a message's `phoneNumberId` overrides it")
    static let accessToken = Setting.optionalString("access_token", default: "", secrecy: .secret, "bearer token of every sender without one of its own in `access_tokens`; never logged")
    static let accessTokens = Setting.stringMap("access_tokens", keys: .digits, secrecy: .secret, "a token per sender phone number id (tenants); a sender-side failure then pauses only the senders of that token")
    static let timeout = Setting.duration("timeout", default: .seconds(10), "time limit of one request, connection included")
    static let maxConnections = Setting.integer("max_connections", 1...1024, default: 64, "keep-alive HTTP/1.1 connections to the API at most (over HTTP/2, negotiated when the server offers it, one connection carries every request)")
    static let caFile = Setting.optionalString("ca_file", default: "", "PEM file of the CA to trust for `https://` (a private CA or a proxy); empty: the system's trust store")
    static let dryRun = Setting.boolean("dry_run", default: false, "log each request and answer with a synthetic wamid, without any network")
    static let throughput = Setting.integer("throughput", 1...100_000, default: 80, "messages per second per sender phone number (Meta's limit; paced at 95 % of it)")
    static let throughputBySender = Setting.map("throughput_by_sender", keys: .digits, values: .integer(1...100_000),
                                                "a limit per sender phone number id, over `throughput`") { value -> Int? in
        if case .integer(let limit) = value { limit } else { nil }
    }
    static let throughputStore = Setting.optionalResource("throughput_store", uses: "redis", default: "redis", "the Redis resource through which every worker shares each sender's limit (none: each worker paces alone)")
    static let pacing = Setting.boolean("pacing", default: true, "pace each sender at its throughput; false only where something else paces the requests")
    static let templateCategories = Setting.map(
        "template_categories", keys: .any, values: .choice(MessageCategory.allCases.map(\.rawValue)),
        "each template's category (`{NAME: category}`: marketing, utility, authentication or service) for messages that name none; an unlisted template counts as marketing"
    ) { value -> MessageCategory? in
        if case .string(let word) = value { MessageCategory(rawValue: word) } else { nil }
    }

    static let senderAccounts = Setting.stringMap(
        "sender_accounts", keys: .digits,
        "the WhatsApp Business Account id of each sender phone number id: its paused and disabled templates are then its account's alone (a template's name is its account's; unlisted senders share them by name and language)")

    public static let schema = SettingsSchema(baseURL, apiVersion, phoneNumberID, accessToken, accessTokens, timeout, maxConnections, caFile, dryRun,
                                              throughput, throughputBySender, throughputStore, pacing, templateCategories, Portfolio.setting,
                                              senderAccounts)

    private static let accountProblem = "is not a WhatsApp Business Account id (1–32 digits 0-9)"

    /// Rules across the resource's settings.
    static func check(_ resource: ComponentDefinition, _ pipeline: PipelineDefinition) -> [Diagnostic] {
        let settings = resource.settings
        if settings[accessToken] == nil, settings[accessTokens].isEmpty {
            return [.error(at: settings.location(of: accessToken) ?? resource.location, "resource `\(resource.name)` (whatsapp_cloud_api) needs `access_token` or `access_tokens`")]
        }
        if let sender = settings[phoneNumberID], let problem = MapKeys.digits.problem(sender) {
            // (It goes into the request's path: the number itself, a common mix-up, is refused by the Cloud API for every message.)
            return [.error(at: settings.location(of: phoneNumberID) ?? resource.location,
                           "`phone_number_id` \"\(sender)\" of resource `\(resource.name)` \(problem): the id Meta shows for the number, not the number")]
        }
        for (sender, account) in settings[senderAccounts].sorted(by: { $0.key < $1.key }) {
            if MapKeys.digits.problem(account) != nil {
                return [.error(at: settings.location(of: senderAccounts) ?? resource.location,
                               "`sender_accounts`: the account of sender \(sender), \"\(account)\", \(accountProblem)")]
            }
        }
        var owner: [String: String] = [:]
        for portfolio in Portfolio.all(settings) {
            // (An id that is not one — the number itself — would match no sender, and the portfolio would go unlimited without a word.)
            for id in portfolio.senders.sorted() {
                if let problem = MapKeys.digits.problem(id) {
                    return [.error(at: settings.location(of: Portfolio.setting) ?? resource.location, "portfolio `\(portfolio.name)`: \"\(id)\" \(problem)")]
                }
            }
            for id in portfolio.accounts where MapKeys.digits.problem(id) != nil {
                return [.error(at: settings.location(of: Portfolio.setting) ?? resource.location, "portfolio `\(portfolio.name)`: account \"\(id)\" \(accountProblem)")]
            }
            for sender in portfolio.senders.sorted() {
                if !portfolio.accounts.isEmpty, let account = settings[senderAccounts][sender], !portfolio.accounts.contains(account) {
                    return [.error(at: settings.location(of: senderAccounts) ?? resource.location,
                                   "`sender_accounts` gives sender \(sender) account \(account), which its portfolio `\(portfolio.name)` does not list in `accounts` (\(portfolio.accounts.joined(separator: ", "))): one of them is wrong")]
                }
                if let first = owner[sender] {
                    return [.error(at: settings.location(of: Portfolio.setting) ?? resource.location,
                                   "sender \(sender) is in portfolios `\(first)` and `\(portfolio.name)`: a sender belongs to one business portfolio")]
                }
                owner[sender] = portfolio.name
            }
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
    /// The Redis resource through which workers share each sender's limit, if any.
    public var throughputStore: String?
    /// Each template's category, for messages that do not name one.
    public var templateCategories: [String: MessageCategory]
    /// Business portfolios whose senders share a messaging limit.
    public var portfolios: [Portfolio]
    /// The WhatsApp Business Account of each sender listed, whose templates' states are its own.
    public var senderAccounts: [String: String]
    /// What pauses when a sender's own token (`access_tokens`) is rejected: every sender of that token.
    private var tokenScopes: [String: PauseScope] = [:]
    /// What pauses when the shared `access_token` is rejected: with no per-sender tokens, everything.
    private var defaultTokenScope: PauseScope
    /// What pauses when a configured sender itself is rejected (made once, not per message).
    private var senderScopes: [String: PauseScope] = [:]

    public init(settings: Settings) {
        var base = settings[CloudAPISettings.baseURL]
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        apiVersion = settings[CloudAPISettings.apiVersion]
        defaultSender = settings[CloudAPISettings.phoneNumberID]
        accessToken = settings[CloudAPISettings.accessToken]
        accessTokens = settings[CloudAPISettings.accessTokens]
        timeout = settings[CloudAPISettings.timeout]
        maxConnections = settings[CloudAPISettings.maxConnections]
        caFile = settings[CloudAPISettings.caFile]
        dryRun = settings[CloudAPISettings.dryRun]
        throughput = settings[CloudAPISettings.throughput]
        pacing = settings[CloudAPISettings.pacing]
        throughputBySender = settings[CloudAPISettings.throughputBySender]
        throughputStore = settings[CloudAPISettings.throughputStore]
        templateCategories = settings[CloudAPISettings.templateCategories]
        portfolios = Portfolio.all(settings)
        senderAccounts = settings[CloudAPISettings.senderAccounts]
        // (The senders of the shared token are every one without a token of its own: the default one is named.)
        let tokens = accessTokens
        let defaultSenderCovered = defaultSender.flatMap { tokens[$0] == nil ? [$0] : nil } ?? []
        defaultTokenScope = PauseScope(key: "token:default", coversAll: accessTokens.isEmpty, covers: defaultSenderCovered)
        for senders in Dictionary(grouping: tokens.keys, by: { tokens[$0] ?? "" }).values.map({ $0.sorted() }) {
            guard let first = senders.first else { continue }
            let scope = PauseScope(key: "token:\(first)", coversAll: false, covers: senders)
            for sender in senders { tokenScopes[sender] = scope }
        }
        for sender in Set(accessTokens.keys).union(defaultSender.map { [$0] } ?? []) { senderScopes[sender] = Self.senderScope(sender) }
    }

    private static func senderScope(_ sender: String) -> PauseScope {
        PauseScope(key: "sender:\(sender)", coversAll: false, covers: [sender])
    }

    /// The portfolio `sender` belongs to, if any.
    public func portfolio(of sender: String) -> Portfolio? {
        portfolios.first { $0.senders.contains(sender) }
    }

    /// The category a message counts as (SPEC 4): its own `category`; else a template's from
    /// `template_categories`, else marketing; `service` for every other type.
    public func category(of message: OutboundMessage) -> MessageCategory {
        if let category = message.category { return category }
        guard case .template(let name, _, _) = message.content else { return .service }
        return templateCategories[name] ?? .marketing
    }

    /// The sender a message goes out from: its own, else the resource's.
    public func sender(of message: OutboundMessage) -> String? {
        message.phoneNumberID ?? defaultSender
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

    /// What pauses when `sender`'s token is rejected: every sender of that token (senders given
    /// the same token in `access_tokens` pause together; with one token for all, the whole
    /// pipeline) — and when the sender itself is rejected: that sender.
    public func pauseScopes(for sender: String) -> (token: PauseScope, sender: PauseScope) {
        (tokenScopes[sender] ?? defaultTokenScope, senderScopes[sender] ?? Self.senderScope(sender))
    }
}
