import Foundation
import PipelineKit
import Synchronization

/// Messaging limits Meta announced (`business_capability_update`, SPEC 15) per WhatsApp Business
/// Account, shared through a key-value store: `msglimit:account:{id}` holds the limit (-1:
/// unlimited), `msglimit:account:{id}:at` when Meta made the change (epoch ms; a key of its own, so
/// that workers of a version before it read the limit as ever). The newest of a portfolio's
/// accounts overrides its `messaging_limit`; each worker trusts what it read for a second.
///
/// The update names the account, not its phone numbers. A portfolio finds its account in its
/// `accounts`, or, without them, through its senders: every statuses webhook names the account
/// and the phone number id it concerns, and the statuses pipeline records the pair
/// (`msglimit:sender:{phone number id}` = account).
///
/// ```swift
/// let limits = AnnouncedLimits(store: store)
/// try await limits.learn(sender: "105512345", account: "102290129340398", at: now) // statuses pipeline, any webhook
/// try await limits.announce(10_000, account: "102290129340398", at: time)  // statuses pipeline
/// let limit = await limits.limit(of: portfolio, at: now)                  // dispatch: nil is unlimited
/// ```
public final class AnnouncedLimits: Sendable {
    /// A limit Meta announced for an account, and when it made the change.
    private struct Announcement {
        var limit: Int
        var at: Date
    }

    private struct Remembered {
        var announcement: Announcement?
        var readAt: Date
    }

    private struct Account {
        var id: String?
        var readAt: Date
    }

    private struct SeenAccounts {
        var accounts: [String]
        var readAt: Date
    }

    private let store: (any KeyValueStore)?
    private let remembered = Mutex<[String: Remembered]>([:])
    /// The account of each sender, as read (dispatch) or written (statuses pipeline).
    private let accounts = Mutex<[String: Account]>([:])
    /// The accounts of each portfolio without `accounts`, by name.
    private let seen = Mutex<[String: SeenAccounts]>([:])
    /// The senders (with the account named) whose configured account `contradiction` reported.
    private let contradictions = Mutex<Set<String>>([])
    /// How long an announcement, or a sender's account, is kept without a newer one.
    static let keptFor: Duration = .seconds(400 * 86_400)
    /// How long a worker trusts the account it read for a sender, and how often the statuses
    /// pipeline writes a pair again.
    static let accountFreshness: TimeInterval = 3600

    public init(store: (any KeyValueStore)?) {
        self.store = store
    }

    public static func key(account: String) -> String { "msglimit:account:\(account)" }

    public static func key(sender: String) -> String { "msglimit:sender:\(sender)" }

    /// The limit of `portfolio` now: the one Meta announced last for one of its accounts (its
    /// `accounts`, else those its senders were seen with), else its `messaging_limit`; nil:
    /// unlimited. A store that cannot be read leaves the configured one.
    public func limit(of portfolio: Portfolio, at now: Date) async -> Int? {
        let accounts = portfolio.accounts.isEmpty ? await seenAccounts(of: portfolio, at: now) : portfolio.accounts
        var newest: Announcement?
        for account in accounts {
            if let announced = await announced(account, at: now), newest.map({ announced.at > $0.at }) ?? true { newest = announced }
        }
        guard let newest else { return portfolio.messagingLimit }
        return newest.limit == Self.unlimited ? nil : newest.limit
    }

    /// Records that `sender` (a phone number id) belongs to `account`, as a webhook about it says;
    /// written again at most once an hour per pair by this process, and tried again 10 s after a
    /// failed write (not on every webhook while the store is down).
    public func learn(sender: String, account: String, at now: Date) async throws(StoreUnavailable) {
        guard let store else { return }
        if let known = accounts.withLock({ $0[sender] }), known.id == account, now.timeIntervalSince(known.readAt) < Self.accountFreshness { return }
        do {
            try await store.set(Self.key(sender: sender), account, ttl: Self.keptFor)
            remember(sender, account, at: now)
        } catch {
            remember(sender, account, at: now.addingTimeInterval(10 - Self.accountFreshness))
            throw error
        }
    }

    /// Records Meta's new limit for `account` (-1: unlimited), changed at `time` (the update's),
    /// unless a newer change is recorded: Meta delivers a webhook again for days after a POST that
    /// failed, and an old tier must not replace a newer one. (Two updates of one account recorded at
    /// the same moment by two workers may still interleave: the store offers no compare-and-set.)
    public func announce(_ limit: Int, account: String, at time: Date) async throws(StoreUnavailable) {
        guard let store else { return }
        if let recorded = try await store.read(Self.timeKey(account: account)).flatMap({ Int($0.value) }),
           recorded > time.epochMilliseconds() { return }
        try await store.set(Self.key(account: account), String(limit), ttl: Self.keptFor)
        try await store.set(Self.timeKey(account: account), String(time.epochMilliseconds()), ttl: Self.keptFor)
    }

    /// When the limit of `account` was changed (epoch ms).
    static func timeKey(account: String) -> String { key(account: account) + ":at" }

    /// Meta's word for no limit.
    static let unlimited = -1

    /// Meta's value: a number (-1: unlimited) or `TIER_250`, `TIER_2K`, `TIER_10K`, `TIER_100K`,
    /// `TIER_UNLIMITED`. Anything else — another negative number, one no `Int` holds — is no limit
    /// at all (nil), never *unlimited*.
    public static func parse(_ value: JSONValue?) -> Int? {
        // `Int(exactly:)`: a number no Int holds (1e300, 400 digits) is no limit, where `Int(_:)` would trap.
        if let number = value?.numberValue { return checked(Int(exactly: number)) }
        switch value?.stringValue {
        case "TIER_250"?: return 250
        case "TIER_1K"?: return 1000
        case "TIER_2K"?: return 2000
        case "TIER_10K"?: return 10_000
        case "TIER_100K"?: return 100_000
        case "TIER_UNLIMITED"?: return unlimited
        case let text?: return checked(Int(text))
        case nil: return nil
        }
    }

    /// A limit, or -1 (unlimited); nil for any other negative number.
    private static func checked(_ limit: Int?) -> Int? {
        guard let limit, limit >= unlimited else { return nil }
        return limit
    }

    /// The accounts `portfolio`'s senders were seen with, in the order of its sender ids; worked
    /// out at most once a minute per portfolio (one lock a message otherwise).
    private func seenAccounts(of portfolio: Portfolio, at now: Date) async -> [String] {
        if let known = seen.withLock({ $0[portfolio.name] }), now.timeIntervalSince(known.readAt) < 60 { return known.accounts }
        var accounts: [String] = []
        for sender in portfolio.senders.sorted() {
            if let account = await account(of: sender, at: now), !accounts.contains(account) { accounts.append(account) }
        }
        seen.withLock { $0[portfolio.name] = SeenAccounts(accounts: accounts, readAt: now) }
        return accounts
    }

    /// The account the statuses webhooks named with `sender` when it is not `configured` (its
    /// `sender_accounts` entry): that account's template updates do not reach the sender. Once per
    /// sender and account named; nil afterwards, when they agree, or when none was named.
    public func contradiction(of configured: String, for sender: String, at now: Date) async -> String? {
        guard let named = await account(of: sender, at: now), named != configured else { return nil }
        let first = contradictions.withLock { told in
            if told.count > 4096 { told.removeAll() }
            return told.insert("\(sender):\(named)").inserted
        }
        return first ? named : nil
    }

    /// The account `sender` was last seen with, read at most once an hour (once a minute while
    /// none is known, or after a failed read; nil: none seen, or the store is down).
    private func account(of sender: String, at now: Date) async -> String? {
        let known = accounts.withLock { $0[sender] }
        if let known, now.timeIntervalSince(known.readAt) < Self.freshness(of: known.id) { return known.id }
        guard let store else { return nil }
        do {
            let id = try await store.read(Self.key(sender: sender))?.value
            remember(sender, id, at: now)
            return id
        } catch {
            // What was known stands; looked up again in a minute.
            remember(sender, known?.id, at: now.addingTimeInterval(60 - Self.freshness(of: known?.id)))
            return known?.id
        }
    }

    private static func freshness(of account: String?) -> TimeInterval {
        account == nil ? 60 : accountFreshness
    }

    private func remember(_ sender: String, _ account: String?, at now: Date) {
        accounts.withLock { accounts in
            if accounts.count > 4096 { accounts.removeAll() }
            accounts[sender] = Account(id: account, readAt: now)
        }
    }

    private func announced(_ account: String, at now: Date) async -> Announcement? {
        let key = Self.key(account: account)
        if let known = remembered.withLock({ $0[key] }), now.timeIntervalSince(known.readAt) < 1 { return known.announcement }
        guard let store else { return nil }
        let announcement: Announcement?
        do {
            // (A limit without its time, as written before the time was kept, is the oldest.)
            let limit = try await store.read(key).flatMap { Self.checked(Int($0.value)) }
            let at = limit == nil ? nil : try await store.read(Self.timeKey(account: account)).flatMap { Date(epochMillisecondsText: $0.value) }
            announcement = limit.map { Announcement(limit: $0, at: at ?? .distantPast) }
        } catch {
            return remembered.withLock { $0[key]?.announcement }
        }
        remembered.withLock { $0[key] = Remembered(announcement: announcement, readAt: now) }
        return announcement
    }
}
