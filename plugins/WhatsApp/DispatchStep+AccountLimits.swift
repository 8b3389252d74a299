import Foundation
import Metrics
import PipelineKit
import ValidatePlugin

/// Meta's account limits (SPEC 15) as `dispatch` meets them: what it checks before a request,
/// and what it does with the answers that concern them.
public struct AccountLimits: Sendable {
    public let templates: TemplateStates
    /// The portfolios' messaging limits.
    public let messaging: MessagingLimits
    /// How long a marketing message Meta declined (`131049`) waits before it goes once more.
    public let marketingRetryAfter: Duration
    /// A sender's marketing after `131048`: 1 min, doubling while it lasts, at most 1 h.
    public static let spamBackoff = EscalationPolicy(first: .seconds(60), factor: 2, cap: .seconds(3600))

    public init(templates: TemplateStates, messaging: MessagingLimits = MessagingLimits(store: nil), marketingRetryAfter: Duration = .seconds(86_400)) {
        self.templates = templates
        self.messaging = messaging
        _ = Self.waits  // exported at 0 from the start, so an alert on `increase` sees the first
        self.marketingRetryAfter = marketingRetryAfter
    }

    static func spamKey(_ sender: String) -> String { "spam:\(sender)" }

    /// `outbound_account_limit_waits_total{reason}`: each time a message waits for an account limit instead of a request.
    private static let waits = Dictionary(uniqueKeysWithValues: [WaitReason.templatePaused, .marketingLimit, .spamLimit, .messagingLimit].map {
        ($0, Counter(label: "outbound_account_limit_waits_total", dimensions: [("reason", $0.rawValue)]))
    })

    private func waiting(_ key: String, until: Date, _ reason: WaitReason, looksAgainAfter: Duration? = nil) -> StepOutcome {
        Self.waits[reason]?.increment()
        return .wait(Wait(key: key, until: until, reason: reason, looksAgainAfter: looksAgainAfter))
    }

    /// A message's template (name, language), when it is one.
    static func template(of message: Message) -> (name: String, language: String)? {
        guard case .template(let name, let language, _)? = message.values[ValidatedMessageKey.self]?.content else { return nil }
        return (name, language)
    }

    /// Before the request (and the send slot): a wait or a refusal that no request is made for;
    /// nil: go on. (The spam hold is one of the holds `dispatch` checks for marketing messages.)
    func beforeSending(_ message: inout Message, _ request: PreparedRequest, sender: String, _ configuration: CloudAPIConfiguration,
                       _ context: StepContext) async throws -> StepOutcome? {
        let now = context.clock.now()
        if let retryAt = MarketingRetry.read(message, now: now, longest: marketingRetryAfter), retryAt > now {
            return waiting("marketing:\(message.values[PreparedRequestKey.self]?.recipient ?? "?")", until: retryAt, .marketingLimit)
        }
        guard let template = Self.template(of: message) else { return nil }
        let account = configuration.senderAccounts[sender]
        if let account, let named = await messaging.announced.contradiction(of: account, for: sender, at: now) {
            context.logger.warning("sender_accounts gives this sender another account than Meta's webhooks name: its template updates do not reach it",
                                   metadata: ["sender": .string(sender), "configured": .string(account), "named": .string(named)])
        }
        let state: TemplateStates.State?
        do {
            state = try await templates.state(of: template.name, template.language, account: account, at: now)
        } catch {
            // Meta refuses a paused template itself: one request, and this worker knows from then on.
            context.logger.debug("template states unavailable; sending", metadata: ["error": .string(error.reason)])
            return nil
        }
        let key = TemplateStates.key(template.name, template.language, account: account)
        switch state {
        case .disabled?:
            throw Self.disabled(TemplateStates.describe(template.name, template.language, account: account))
        case .paused(let until)?:
            return pausedWait(key, until: until, reason: "template \(TemplateStates.describe(template.name, template.language, account: account)) paused by Meta", context)
        case nil:
            context.flow.holds.clear(key)
            return try await waitWhileFull(message, request, sender: sender, configuration, context)
        }
    }

    /// A message of a template found disabled: dead-lettered without a request.
    private static func disabled(_ template: String) -> StepFailure {
        StepFailure(.permanent, "template disabled: \(template); not sent", code: 132016)
    }

    /// A message of a paused template waits until the pause ends or, sooner, until it looks again:
    /// every `TemplateStates.parkedLook` while parked in memory, after `TemplateStates.lookAgain`
    /// when it goes round the delay queues. The pause shows on `/health` as a hold of this worker.
    private func pausedWait(_ key: String, until: Date, reason: String, _ context: StepContext) -> StepOutcome {
        let now = context.clock.now()
        let length = Duration.milliseconds(max(1, Int64(until.timeIntervalSince(now) * 1000)))
        context.flow.holds.hold(key, policy: EscalationPolicy(first: length, factor: 1, cap: length), kind: .templatePaused, reason: reason)
        let look = TemplateStates.lookAgain(pausedSince: templates.pausedSince(key, at: now), at: now)
        return waiting(key, until: min(until, now.addingTimeInterval(look.secondsDouble)), .templatePaused, looksAgainAfter: TemplateStates.parkedLook)
    }

    /// An answer that concerns an account limit: what becomes of the message. Throws the failure
    /// for those that end it; nil for an answer that is not one of them. (`startedAt`: when the request began.)
    func answered(_ error: CloudAPIFailure, _ message: inout Message, _ request: PreparedRequest, sender: String, startedAt: Date,
                  holds: SharedHolds, _ configuration: CloudAPIConfiguration, _ context: StepContext) async throws -> StepOutcome? {
        let now = context.clock.now()
        let template = Self.template(of: message)
        let account = configuration.senderAccounts[sender]
        switch error.kind {
        case .templatePaused:
            guard let (name, language) = template else { return nil }
            var state: TemplateStates.State? = .paused(until: now.addingTimeInterval(TemplateStates.defaultPause.secondsDouble))
            await record(context) { () async throws(StoreUnavailable) in
                state = try await templates.refused(name, language, account: account, at: now, startedAt: startedAt)
            }
            let key = TemplateStates.key(name, language, account: account)
            let described = TemplateStates.describe(name, language, account: account)
            guard let state else {
                context.logger.notice("132015 for a request begun before the template was approved: sent again",
                                      metadata: ["template": .string(described)])
                return .wait(Wait(key: key, until: now, reason: .templatePaused))
            }
            context.logger.warning("template paused by Meta: its messages wait", metadata: ["template": .string(described), "reason": .string(error.reason)])
            guard case .paused(let until) = state else {
                throw Self.disabled(described)
            }
            return pausedWait(key, until: until, reason: "template \(described) paused by Meta: \(error.reason)", context)
        case .templateDisabled:
            if let (name, language) = template {
                await record(context) { () async throws(StoreUnavailable) in try await templates.disable(name, language, account: account, at: now) }
            }
            let described = template.map { "\(TemplateStates.describe($0.name, $0.language, account: account)): " } ?? ""
            throw StepFailure(.permanent, "template disabled: \(described)\(error.reason)", code: error.code)
        case .marketingDeclined:
            // It went once more after its wait and was declined again: Meta keeps declining it.
            if MarketingRetry.read(message, now: now, longest: marketingRetryAfter) != nil {
                throw StepFailure(.permanent, "declined again for the user's marketing limit after waiting \(DurationParser.format(marketingRetryAfter)): \(error.reason)", code: error.code)
            }
            MarketingRetry.write(now.addingTimeInterval(marketingRetryAfter.secondsDouble), &message)
            let retryAt = MarketingRetry.read(message, now: now, longest: marketingRetryAfter) ?? now
            return waiting("marketing:\(request.recipient)", until: retryAt, .marketingLimit)
        case .marketingStopped:
            message.values[MarketingStoppedKey.self] = (request.recipient, sender)
            message.values[AccompanyingEventsKey.self] = (message.values[AccompanyingEventsKey.self] ?? [])
                + [OptOutEvent.prepared(added: true, recipient: request.recipient, sender: sender, source: .refusal, at: now)]
            throw StepFailure(.permanent, "recipient stopped marketing messages: \(error.reason)", code: error.code)
        case .spamLimit:
            Counter(label: "outbound_flow_control_total", dimensions: [("sender", sender), ("code", "131048")]).increment()
            let until = await holds.hold(Self.spamKey(sender), group: sender, policy: Self.spamBackoff, kind: .spamLimit, reason: error.reason,
                                         startedAt: startedAt, context.flow, logger: context.logger)
            return waiting(Self.spamKey(sender), until: until, .spamLimit)
        default:
            return nil
        }
    }

    /// The messaging-limit window a message counts in, and the part of its limit it may use: for a
    /// template from a sender of a portfolio with a limit, when a store counts it.
    private func window(of message: Message, sender: String, _ configuration: CloudAPIConfiguration, at now: Date)
        async -> (store: any MessagingLimitStore, key: String, allowed: Int, portfolio: String)? {
        guard let store = messaging.store, Self.template(of: message) != nil, let portfolio = configuration.portfolio(of: sender),
              let limit = await messaging.announced.limit(of: portfolio, at: now) else { return nil }
        return (store, MessagingLimits.key(portfolio.name), MessagingLimits.allowed(of: limit, lane: message.lane), portfolio.name)
    }

    /// Before the send slot, while the message's window was found full lately: a wait without a
    /// slot — a message that waits for the window takes none from its sender's other messages — if
    /// it still is for this recipient. A look that takes nothing: the unit is taken just
    /// before the request, as ever (one taken here would be kept by a message that then waits for
    /// its turn, expires or goes round the delay queues).
    private func waitWhileFull(_ message: Message, _ request: PreparedRequest, sender: String, _ configuration: CloudAPIConfiguration,
                       _ context: StepContext) async throws -> StepOutcome? {
        let now = context.clock.now()
        guard let window = await window(of: message, sender: sender, configuration, at: now) else { return nil }
        let id = FullWindows.id(window.key, allowed: window.allowed)
        guard messaging.fullWindows.isFull(id, at: now) else { return nil }
        let look: MessagingLimitLook
        do {
            look = try await window.store.look(window.key, recipient: request.recipient, limit: window.allowed, window: MessagingLimits.window)
        } catch {
            throw StepFailure(.unavailable, "messaging limit of portfolio \(window.portfolio): \(error.reason)")
        }
        switch look {
        case .counted:
            return nil
        case .room:
            messaging.fullWindows.found(id, fullUntil: nil)
            return nil
        case .full(let until):
            messaging.fullWindows.found(id, fullUntil: until)
            return waiting(window.key, until: max(until, now.addingTimeInterval(1)), .messagingLimit)
        }
    }

    /// Just before the request of a template message from a sender of a portfolio with a
    /// messaging limit: a unit for a new recipient, or a wait while the window is full.
    func takeUnit(_ message: inout Message, _ request: PreparedRequest, sender: String, _ configuration: CloudAPIConfiguration,
                  _ context: StepContext) async throws -> StepOutcome? {
        guard let window = await window(of: message, sender: sender, configuration, at: context.clock.now()) else { return nil }
        let take: MessagingLimitTake
        do {
            take = try await window.store.take(window.key, recipient: request.recipient, limit: window.allowed, window: MessagingLimits.window)
        } catch {
            throw StepFailure(.unavailable, "messaging limit of portfolio \(window.portfolio): \(error.reason)")
        }
        let id = FullWindows.id(window.key, allowed: window.allowed)
        switch take {
        case .counted:
            return nil
        case .taken(let at):
            messaging.fullWindows.found(id, fullUntil: nil)
            message.values[MessagingUnitKey.self] = MessagingUnit(key: window.key, recipient: request.recipient, takenAt: at)
            return nil
        case .full(let until):
            messaging.fullWindows.found(id, fullUntil: until)
            return waiting(window.key, until: max(until, context.clock.now().addingTimeInterval(1)), .messagingLimit)
        }
    }

    /// The Cloud API refused the message, or it was not tried: the unit it took goes back.
    func giveBackUnit(_ message: inout Message, _ context: StepContext) async {
        guard let unit = message.values[MessagingUnitKey.self], let store = messaging.store else { return }
        message.values[MessagingUnitKey.self] = nil
        do {
            try await store.giveBack(unit.key, recipient: unit.recipient, takenAt: unit.takenAt)
        } catch {
            context.logger.warning("a messaging-limit unit of a refused message could not be given back", metadata: ["error": .string(error.reason)])
        }
    }

    private func record(_ context: StepContext, _ write: () async throws(StoreUnavailable) -> Void) async {
        do {
            try await write()
        } catch {
            context.logger.warning("template state not shared (this worker keeps it)", metadata: ["error": .string(error.reason)])
        }
    }
}

/// A unit of a portfolio's messaging limit a message took, to give back if the Cloud API refuses it.
struct MessagingUnit: Sendable {
    var key: String
    var recipient: String
    var takenAt: Int64
}

enum MessagingUnitKey: MessageValueKey {
    typealias Value = MessagingUnit
}
