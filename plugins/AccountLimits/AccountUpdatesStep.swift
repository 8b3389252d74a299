import Foundation
import Metrics
import PipelineKit
import WebhookPlugin
import WhatsAppPlugin

/// Step `account_updates` (statuses pipeline, SPEC 15): Meta's account updates become the state
/// every worker's `dispatch` reads.
///
/// - `message_template_status_update`: `PAUSED` pauses a template (`TemplateStates`; 3 h for a
///   `FIRST_PAUSE`, 6 h for a `SECOND_PAUSE`, from the update), `DISABLED` disables it,
///   `APPROVED`/`REINSTATED` lets it go again — for the account the update names (the entry's id)
///   and for the senders no account is configured for.
/// - `business_capability_update`: a new messaging limit for the WhatsApp Business Account
///   (`AnnouncedLimits`), which every portfolio listing that account in `accounts` then uses.
/// - Any webhook: the account of each phone number id it names (`AnnouncedLimits.learn`), for
///   the portfolios that list no `accounts` — best effort: a store that is down does not fail the
///   webhook for it.
///
/// The changes are also published as the batch's `webhook.{field}` events, so this step comes
/// after `status_events`. The state is written before the POST is answered: a store that is down
/// fails the step (`fail_closed`: 503, and Meta sends the update again).
struct AccountUpdatesStep: Step {
    let templates: TemplateStates
    let limits: AnnouncedLimits
    static let updates = Counter(label: "outbound_account_updates_total")

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard let batch = message.values[WebhookBatchKey.self] else { return .next }
        for (sender, account) in batch.accountsOfSenders {
            do {
                try await limits.learn(sender: sender, account: account, at: context.clock.now())
            } catch {
                // Best effort: a status webhook is never refused for it (its statuses are published with Redis down).
                context.logger.warning("the account of a sender not recorded; tried again in 10 s", metadata: ["sender": .string(sender), "error": .string(error.reason)])
            }
        }
        for change in batch.changes {
            do {
                switch change.field {
                case "message_template_status_update":
                    guard let update = TemplateUpdate(change, receivedAt: batch.receivedAt) else { continue }
                    try await apply(update, account: change.account, now: context.clock.now())
                    context.logger.notice("template status update", metadata: ["template": .string(TemplateStates.describe(update.name, update.language, account: change.account)),
                                                                              "event": .string(update.event)])
                case "business_capability_update":
                    guard let account = change.account,
                          let limit = AnnouncedLimits.parse(change.value["max_daily_conversations_per_business"]) ?? AnnouncedLimits.parse(change.value["max_daily_conversation_per_phone"])
                    else { continue }
                    try await limits.announce(limit, account: account, at: change.time ?? batch.receivedAt)
                    context.logger.notice("messaging limit update", metadata: ["account": .string(account), "limit": "\(limit < 0 ? "unlimited" : String(limit))"])
                default:
                    continue
                }
            } catch {
                throw StepFailure(.unavailable, "account updates: \(error.reason)")
            }
            Self.updates.increment()
        }
        return .next
    }

    /// The update under the account's key (`TemplateStates.key`), which `dispatch` reads for the
    /// senders `sender_accounts` gives that account, and under the key without one, which it reads
    /// for every other sender (SPEC 15: by name and language).
    private func apply(_ update: TemplateUpdate, account: String?, now: Date) async throws(StoreUnavailable) {
        for account in Set([account, nil]) {
            switch update.event {
            case "PAUSED":
                try await templates.pause(update.name, update.language, account: account, until: update.pauseEnds, at: now)
            case "DISABLED":
                try await templates.disable(update.name, update.language, account: account, at: now)
            case "APPROVED", "REINSTATED":
                try await templates.approve(update.name, update.language, account: account, at: now)
            default:
                break
            }
        }
    }
}

/// One `message_template_status_update` change.
struct TemplateUpdate: Equatable {
    var event: String
    var name: String
    var language: String
    /// When a pause ends: 6 h after the update's time for a `SECOND_PAUSE`, else 3 h (SPEC 15) — the
    /// time Meta gives the change, so a re-sent `PAUSED` does not move the end later; the time it was
    /// received when Meta gives none, or one ahead of it (a clock that runs fast).
    var pauseEnds: Date

    init?(_ change: WebhookBatch.Change, receivedAt: Date) {
        let value = change.value
        guard let event = value["event"]?.stringValue, let name = value["message_template_name"]?.stringValue,
              let language = value["message_template_language"]?.stringValue else { return nil }
        self.event = event.uppercased()
        self.name = name
        self.language = language
        let hours: Double = value["other_info"]?["title"]?.stringValue == "SECOND_PAUSE" ? 6 : 3
        pauseEnds = min(change.time ?? receivedAt, receivedAt).addingTimeInterval(hours * 3600)
    }
}

/// The settings of the `account_updates` step.
enum AccountUpdatesSettings {
    static let store = Setting.resource("store", uses: "redis", default: "redis",
                                        "the `redis` resource the outbound pipeline's `dispatch` reads template states and messaging limits from")
    static let schema = SettingsSchema(store)
}

extension StepPlugin {
    /// The `account_updates` step plugin.
    public static let accountUpdates = StepPlugin(
        name: "account_updates",
        summary: "Meta's template status updates (paused, disabled, approved) and messaging-limit updates become the state every worker's `dispatch` reads",
        settings: AccountUpdatesSettings.schema,
        defaultOnError: .deadLetter,
        defaultDegradation: .failClosed,
        requires: [.webhookBatch],
        make: { context in
            let store = try context.resources.get(context.settings[AccountUpdatesSettings.store], as: (any KeyValueStore).self)
            return AccountUpdatesStep(templates: TemplateStates(store: store), limits: AnnouncedLimits(store: store))
        }
    )
}
