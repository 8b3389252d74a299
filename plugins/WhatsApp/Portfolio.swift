import PipelineKit

/// A business portfolio (SPEC 15): its senders share one messaging limit — business-initiated
/// (template) messages may reach at most `messagingLimit` unique recipients per rolling 24 h.
public struct Portfolio: Sendable, Equatable {
    public var name: String
    public var senders: Set<String>
    /// Unique recipients per rolling 24 h; nil: unlimited.
    public var messagingLimit: Int?
    /// Its WhatsApp Business Account ids: Meta's `business_capability_update` for one of them sets
    /// the limit. Empty: those its senders were seen with (`AnnouncedLimits.learn`).
    public var accounts: [String]

    public init(name: String, senders: Set<String>, messagingLimit: Int?, accounts: [String] = []) {
        self.name = name
        self.senders = senders
        self.messagingLimit = messagingLimit
        self.accounts = accounts
    }

    /// The settings of one entry of `portfolios`.
    static let senders = Setting.strings("senders", default: [], "the phone number ids of the portfolio")
    static let messagingLimit = Setting.optionalInteger("messaging_limit", 1...1_000_000_000,
                                                        "unique recipients of template messages per rolling 24 h (250, 2000, 10000, 100000; absent: unlimited)")
    static let accounts = Setting.strings("accounts", default: [],
                                          "its WhatsApp Business Account ids: a `business_capability_update` webhook for one of them (statuses pipeline, step `account_updates`) sets the limit; absent: the accounts the statuses webhooks named with its senders")
    static let schema = SettingsSchema(senders, messagingLimit, accounts)

    /// The `portfolios` setting of `whatsapp_cloud_api`.
    static let setting = Setting.map("portfolios", keys: .any, values: .object(schema),
                                     "business portfolios (`{NAME: {senders: [ids], messaging_limit: N, accounts: [WABA ids]}}`) whose senders share Meta's messaging limit") { value -> Settings? in
        if case .object(let entries) = value { Settings(entries) } else { nil }
    }

    static func all(_ settings: Settings) -> [Portfolio] {
        settings[setting].map { name, entry in Portfolio(name: name, senders: Set(entry[senders]), messagingLimit: entry[messagingLimit], accounts: entry[accounts]) }
            .sorted { $0.name < $1.name }
    }
}
