import Metrics
import PipelineKit
import RedisPlugin
import ValidatePlugin
import WhatsAppPlugin

extension OutcomeLabel {
    /// The recipient opted out of the message's category: acknowledged, never sent.
    public static let suppressed: OutcomeLabel = "suppressed"
}

/// Step `suppress` (SPEC 16): a message of a suppressed category (marketing, by default) to a
/// recipient on its sender's opt-out list, or on the list for all senders, ends `suppressed` —
/// acknowledged, no request, event `outbound.suppressed`. Other categories never touch the store.
///
/// The list is also where Meta's word goes: when `dispatch` is refused because the recipient
/// stopped marketing messages (`131050`, SPEC 15), it notes them on the message
/// (`MarketingStoppedKey`) and the run is undone, and this step's `undo` adds them to the list of
/// the sender (the event `optout.added` with source `131050` goes with the dead letter's).
///
/// Stateless: one instance serves every message at once; it holds nothing else to undo.
struct SuppressStep: Step {
    let list: OptOutList
    let client: any CloudAPISender
    let categories: Set<MessageCategory>
    static let suppressed = Counter(label: "outbound_suppressed_total")

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard let validated = message.values[ValidatedMessageKey.self] else { return .next }
        let configuration = client.configuration
        let category = configuration.category(of: validated)
        guard categories.contains(category) else { return .next }
        let sender = configuration.sender(of: validated)
        let listing: OptOutList.Listing?
        do {
            listing = try await list.listing(validated.to, sender: sender)
        } catch {
            throw StepFailure(.unavailable, "opt-out lists: \(error.reason)")
        }
        guard let listing else { return .next }
        Self.suppressed.increment()
        return .finish(as: .suppressed, "\(validated.to) opted out (list of \(listing == .sender ? "sender \(sender ?? "?")" : "all senders")); \(category.rawValue) message not sent")
    }

    func undo(_ message: Message, _ context: StepContext) async {
        guard let stopped = message.values[MarketingStoppedKey.self] else { return }
        do {
            if try await list.add(stopped.recipient, sender: stopped.sender) { Self.refusals.increment() }
        } catch {
            context.logger.error("a recipient who stopped marketing messages (131050) could not be added to the opt-out list",
                                 metadata: ["recipient": .string(stopped.recipient), "sender": .string(stopped.sender), "error": .string(error.reason)])
        }
    }

    static let refusals = Counter(label: "outbound_optout_changes_total", dimensions: [("source", "131050")])
}

/// The settings of the `suppress` step (`outbound-worker optout` reads its store and prefix).
public enum SuppressSettings {
    public static let store = Setting.resource("store", uses: "redis", default: "redis", "the `redis` resource holding the opt-out lists")
    static let client = Setting.resource("client", uses: "whatsapp_cloud_api", default: "whatsapp",
                                         "the `whatsapp_cloud_api` resource whose default sender and `template_categories` apply")
    static let categories = Setting.choices("categories", default: [MessageCategory.marketing], "the categories opt-outs apply to")
    public static let prefix = Setting.string("prefix", default: "optout:", "what the lists' keys start with: {prefix}all, {prefix}sender:{phone number id}")

    static let schema = SettingsSchema(store, client, categories, prefix)

    static func list(_ settings: Settings, _ resources: Resources) throws -> OptOutList {
        OptOutList(store: try resources.get(settings[store], as: (any KeyValueStore).self), prefix: settings[prefix])
    }
}

extension StepPlugin {
    /// The `suppress` step plugin.
    public static let suppress = StepPlugin(
        name: "suppress",
        summary: "ends a message `suppressed` when its recipient opted out of its category (per sender, or for all senders)",
        settings: SuppressSettings.schema,
        defaultOnError: .deadLetter,
        defaultDegradation: .failClosed,
        requires: [.validatedMessage],
        outcomes: [.suppressed],
        make: { context in
            _ = SuppressStep.refusals  // exported at 0 from the start
            return SuppressStep(list: try SuppressSettings.list(context.settings, context.resources),
                         client: try context.resources.get(context.settings[SuppressSettings.client], as: (any CloudAPISender).self),
                         categories: Set(context.settings[SuppressSettings.categories]))
        }
    )
}
