import Foundation
import PipelineKit
import Synchronization

/// Templates Meta paused or disabled (SPEC 15), shared by every worker and the statuses pipeline
/// through a key-value store: `template:{name}:{language}` — `template:{account}:{name}:{language}`
/// for a sender whose WhatsApp Business Account is configured (`key`) — holds `paused:{end, epoch ms}`
/// (expiring when the pause ends) or `disabled`; an approval deletes it and notes when it came in
/// `template-approved:…` (the same key's rest). Each worker remembers what it read for one
/// second, so a template's messages cost one read a second, and an update is in effect everywhere
/// within that second; what this worker learns itself (a `132015` answer) is in effect at once,
/// and stays so for this worker while the store cannot be read or could not be written — until
/// it ends or an approval after it is noted.
///
/// ```swift
/// let templates = TemplateStates(store: store)
/// if case .paused(let until)? = try await templates.state(of: "order_update", "en_US", at: now) { … wait until then }
/// try await templates.pause("order_update", "en_US", until: now.addingTimeInterval(3 * 3600), at: now)
/// ```
public final class TemplateStates: Sendable {
    /// What Meta decided about a template.
    public enum State: Sendable, Equatable {
        /// Paused until then: its messages wait.
        case paused(until: Date)
        /// Disabled: its messages are dead-lettered without a request.
        case disabled
    }

    /// How long a pause lasts when nothing says (the first pause: 3 h).
    public static let defaultPause: Duration = .seconds(3 * 3600)
    /// How long a disabled template stays so without an update.
    static let disabledFor: Duration = .seconds(30 * 86_400)
    /// How long a worker trusts what it read.
    static let freshness: TimeInterval = 1

    private struct Remembered {
        var state: State?
        var readAt: Date
    }

    /// A state this worker learned and could not share, and when.
    private struct Unshared {
        var state: State
        var learnedAt: Date
    }

    private let store: (any KeyValueStore)?
    private let remembered = Mutex<[String: Remembered]>([:])
    /// What this worker learned itself and could not share (the store refused the write).
    private let unshared = Mutex<[String: Unshared]>([:])
    /// When this worker first found each template paused in its current pause.
    private let pausedSeen = Mutex<[String: Date]>([:])
    /// When this worker last found a template it knew paused approved (its key gone before the pause's
    /// end) or approved it itself (`approve`).
    private let approvedSeen = Mutex<[String: Date]>([:])

    /// Without a store, each worker knows only what it learned itself.
    public init(store: (any KeyValueStore)?) {
        self.store = store
    }

    /// The store key of a template (name + language): `template:{name}:{language}` (SPEC 15), or
    /// `template:{account}:{name}:{language}` for a sender whose WhatsApp Business Account
    /// `sender_accounts` names — a template's name is its account's alone, so that one tenant's
    /// paused or disabled template does not hold another's of the same name. The statuses pipeline
    /// writes each update under both.
    public static func key(_ name: String, _ language: String, account: String? = nil) -> String {
        account.map { "template:\($0):\(name):\(language)" } ?? "template:\(name):\(language)"
    }

    /// A template as logs, dead letters and `/health` name it: `order_update (en_US)`, with `of
    /// account 9001` when its state is its account's.
    public static func describe(_ name: String, _ language: String, account: String?) -> String {
        "\(name) (\(language))" + (account.map { " of account \($0)" } ?? "")
    }

    /// A store key read back: the template (`order_update:en_US`) and the account it is keyed by,
    /// if any (template names and language codes hold no `:`).
    public static func parts(ofKey key: String) -> (template: String, account: String?) {
        let parts = key.dropFirst("template:".count).split(separator: ":", omittingEmptySubsequences: false)
        guard parts.count == 3 else { return (String(key.dropFirst("template:".count)), nil) }
        return ("\(parts[1]):\(parts[2])", String(parts[0]))
    }

    /// The store key that notes a template's last approval (epoch milliseconds), kept as long as a
    /// state learned while the store could not be written can last.
    static func approvalKey(of key: String) -> String {
        "template-approved:" + key.dropFirst("template:".count)
    }

    /// The template's state now; nil: approved (or never heard of).
    public func state(of name: String, _ language: String, account: String? = nil, at now: Date) async throws(StoreUnavailable) -> State? {
        let key = Self.key(name, language, account: account)
        if let known = remembered.withLock({ $0[key] }), now.timeIntervalSince(known.readAt) < Self.freshness {
            return Self.current(known.state, at: now)
        }
        let wasPaused = remembered.withLock { $0[key] }.flatMap { Self.current($0.state, at: now) }.map { if case .paused = $0 { true } else { false } } ?? false
        let own = unshared.withLock { $0[key] }.flatMap { Self.current($0.state, at: now) == nil ? nil : $0 }
        var state: State?
        if let store {
            do {
                state = Self.decode(try await store.read(key)?.value)
                if state == nil, let own, try await !approved(key, since: own.learnedAt, in: store) { state = own.state }
            } catch {
                guard let own else { throw error }
                state = own.state
            }
        } else {
            state = remembered.withLock { $0[key]?.state }
        }
        remember(key, state, at: now, unlessLearnedSince: true)
        let current = Self.current(remembered.withLock { $0[key]?.state }, at: now)
        if current == nil {
            _ = pausedSeen.withLock { $0.removeValue(forKey: key) }
            if wasPaused { seenApproved(key, at: now) }
        }
        return current
    }

    /// The template is paused until `until` (a `132015` answer, a `PAUSED` update).
    /// A pause this worker knows to last longer (a `SECOND_PAUSE`) is not shortened.
    public func pause(_ name: String, _ language: String, account: String? = nil, until: Date, at now: Date) async throws(StoreUnavailable) {
        let key = Self.key(name, language, account: account)
        if case .paused(let current)? = remembered.withLock({ $0[key]?.state }), current > until { return }
        remember(key, .paused(until: until), at: now)
        let length = until.timeIntervalSince(now)
        guard length >= 1 else { return }
        try await share(key, .paused(until: until), at: now) { store throws(StoreUnavailable) in
            try await store.set(key, Self.value(pausedUntil: until), ttl: .seconds(Int64(length.rounded(.up))))
        }
    }

    /// A `132015` answer: the template is paused for 3 h from the first `132015` (SPEC 15). A pause
    /// already in effect — this worker's, another's, or an update's `SECOND_PAUSE` — stays as it is,
    /// so the answers of the requests that were under way neither move its end nor cut it short.
    /// Returns the state in effect (what the store holds when it held something already); nil when
    /// the request began (`startedAt`) before this worker saw the template approved: the answer is
    /// of the pause that ended, and the message goes again (a new pause refuses its next request).
    @discardableResult
    public func refused(_ name: String, _ language: String, account: String? = nil, at now: Date, startedAt: Date? = nil) async throws(StoreUnavailable) -> State? {
        let key = Self.key(name, language, account: account)
        if let startedAt, let approved = approvedSeen.withLock({ $0[key] }), startedAt < approved { return nil }
        if let known = Self.current(remembered.withLock({ $0[key]?.state }), at: now) { return known }
        let until = now.addingTimeInterval(Self.defaultPause.secondsDouble)
        remember(key, .paused(until: until), at: now)
        var state = State.paused(until: until)
        try await share(key, state, at: now) { store throws(StoreUnavailable) in
            guard try await !store.setIfAbsent(key, Self.value(pausedUntil: until), ttl: Self.defaultPause) else { return }
            if let stored = Self.current(Self.decode(try await store.read(key)?.value), at: now) { state = stored }
        }
        remember(key, state, at: now)
        return state
    }

    /// The template is disabled (a `132016` answer, a `DISABLED` update).
    public func disable(_ name: String, _ language: String, account: String? = nil, at now: Date) async throws(StoreUnavailable) {
        let key = Self.key(name, language, account: account)
        remember(key, .disabled, at: now)
        try await share(key, .disabled, at: now) { store throws(StoreUnavailable) in try await store.set(key, "disabled", ttl: Self.disabledFor) }
    }

    /// How often a waiting message parked in memory looks again, however long the pause has lasted
    /// (what this worker read in the last second, else one Redis read): an approval is followed within
    /// 6 s (SPEC 15: 10 s). Parking holds at most `prefetch − concurrency` of them, so this costs a few
    /// step runs a second, and no broker round trip.
    public static let parkedLook: Duration = .seconds(5)

    /// How long a message of a template paused since `since` stays away when it waits beyond what
    /// parking holds (a round of the delay queues): a tenth of how long the pause has lasted, at
    /// least 5 s and at most 2 min — an approval soon after a pause is followed within seconds,
    /// while a pause of hours costs each such message one round every 2 min.
    public static func lookAgain(pausedSince since: Date, at now: Date) -> Duration {
        .milliseconds(Int64(min(max(now.timeIntervalSince(since) / 10, 5), 120) * 1000))
    }

    /// When this worker first found `key` paused in its current pause (now, the first time).
    public func pausedSince(_ key: String, at now: Date) -> Date {
        pausedSeen.withLock { seen in
            if let since = seen[key] { return since }
            if seen.count > 4096 { seen.removeAll() }
            seen[key] = now
            return now
        }
    }

    /// The template may be sent again (an `APPROVED` or `REINSTATED` update). Noted in the store,
    /// so a worker that learned a state it could not share drops it too.
    public func approve(_ name: String, _ language: String, account: String? = nil, at now: Date) async throws(StoreUnavailable) {
        let key = Self.key(name, language, account: account)
        remember(key, nil, at: now)
        seenApproved(key, at: now)
        _ = unshared.withLock { $0.removeValue(forKey: key) }
        guard let store else { return }
        try await store.set(Self.approvalKey(of: key), String(now.epochMilliseconds()), ttl: Self.disabledFor)
        try await store.delete(key)
    }

    /// Whether the store notes an approval of `key` at or after `since` (within `clockSkew`: the
    /// approval's time is the statuses pipeline's clock); drops what this worker learned and could not share if so.
    private func approved(_ key: String, since: Date, in store: any KeyValueStore) async throws(StoreUnavailable) -> Bool {
        guard let noted = try await store.read(Self.approvalKey(of: key)).flatMap({ Date(epochMillisecondsText: $0.value) }) else { return false }
        let approvedAt = noted.addingTimeInterval(Self.clockSkew)
        guard approvedAt >= since else { return false }
        unshared.withLock { unshared in
            if let learned = unshared[key], learned.learnedAt <= approvedAt { unshared[key] = nil }
        }
        return true
    }

    /// How far apart the clocks of a worker and the statuses pipeline may be when an approval is
    /// compared with a state learned just after it (a state learned after the approval that this
    /// drops comes back with the template's next refusal).
    static let clockSkew: TimeInterval = 2

    private func seenApproved(_ key: String, at now: Date) {
        approvedSeen.withLock { seen in
            if seen.count > 4096 { seen.removeAll() }
            seen[key] = now
        }
    }

    /// Writes what this worker learned; kept as its own while the write fails.
    private func share(_ key: String, _ state: State, at now: Date, _ write: (any KeyValueStore) async throws(StoreUnavailable) -> Void) async throws(StoreUnavailable) {
        guard let store else { return }
        do {
            try await write(store)
            _ = unshared.withLock { $0.removeValue(forKey: key) }
        } catch {
            unshared.withLock { $0[key] = Unshared(state: state, learnedAt: now) }
            throw error
        }
    }

    /// `unlessLearnedSince`: for what a read found — not over what this worker learned after the
    /// read began (a `132015` read meanwhile stays in effect: no request of the template starts after it).
    private func remember(_ key: String, _ state: State?, at now: Date, unlessLearnedSince: Bool = false) {
        remembered.withLock { remembered in
            if unlessLearnedSince, let known = remembered[key], known.readAt > now { return }
            if remembered.count > 4096 { remembered = remembered.filter { now.timeIntervalSince($0.value.readAt) < Self.freshness } }
            remembered[key] = Remembered(state: state, readAt: now)
        }
    }

    private static func current(_ state: State?, at now: Date) -> State? {
        if case .paused(let until)? = state, until <= now { return nil }
        return state
    }

    private static func value(pausedUntil until: Date) -> String {
        "paused:\(until.epochMilliseconds(.toNearestOrAwayFromZero))"
    }

    /// `paused:{epoch milliseconds}` or `disabled`; anything else is no state.
    public static func decode(_ value: String?) -> State? {
        guard let value else { return nil }
        if value == "disabled" { return .disabled }
        guard value.hasPrefix("paused:"), let until = Date(epochMillisecondsText: value.dropFirst("paused:".count)) else { return nil }
        return .paused(until: until)
    }
}
