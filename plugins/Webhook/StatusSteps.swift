import Foundation
import Metrics
import PipelineKit

/// Step `webhook_changes`: parses the webhook body into statuses and other changes.
struct WebhookChangesStep: Step {
    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard let payload = message.payload, payload.objectValue != nil else {
            throw StepFailure(.invalid, message.parseError ?? "a webhook body must be a JSON object")
        }
        message.values[WebhookBatchKey.self] = WebhookBatch(payload, receivedAt: context.clock.now())
        return .next
    }
}

/// Step `correlate_statuses`: the internalId of each status — `biz_opaque_callback_data` when
/// it came with one, else the `wamid:` mapping `mark_completed` wrote — and, for a status that
/// names its internalId, the settlement of that send in the outbound pipeline's keys (SPEC 13: a
/// key still processing or in doubt becomes completed with the status's wamid).
struct CorrelateStatusesStep: Step {
    let ledger: any StatusLedger
    let settlement: any SendSettlement
    /// The outbound pipeline's idempotency key pattern (`{internalId}` its only field).
    let idempotencyKey: KeyTemplate
    static let settledSends = Counter(label: "outbound_webhook_sends_settled_total")

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard var batch = message.values[WebhookBatchKey.self] else { return .next }
        for index in batch.statuses.indices { batch.statuses[index].internalID = batch.statuses[index].callbackData.flatMap { $0.isEmpty ? nil : $0 } }
        let unknown = batch.statuses.filter { $0.internalID == nil }.map(\.wamid)
        message.values[WebhookBatchKey.self] = batch
        try await settle(batch, context)
        guard !unknown.isEmpty else { return .next }
        let found: [String: String]
        do {
            found = try await ledger.internalIDs(of: Array(Set(unknown)))
        } catch {
            throw StepFailure(.unavailable, "status ledger: \(error.reason)")
        }
        for index in batch.statuses.indices where batch.statuses[index].internalID == nil {
            batch.statuses[index].internalID = found[batch.statuses[index].wamid]
        }
        message.values[WebhookBatchKey.self] = batch
        return .next
    }

    /// Settles the sends the statuses name by their `biz_opaque_callback_data` (a status of any kind proves the send was accepted).
    private func settle(_ batch: WebhookBatch, _ context: StepContext) async throws {
        var seen = Set<String>()
        let sends = batch.statuses.compactMap { status -> SettledSend? in
            guard let internalID = status.internalID, seen.insert(internalID).inserted,
                  let key = idempotencyKey.render({ $0 == "internalId" ? internalID : nil }) else { return nil }
            return SettledSend(key: key, wamid: status.wamid, internalID: internalID)
        }
        guard !sends.isEmpty else { return }
        do {
            let settled = try await settlement.settle(sends, at: context.clock.now())
            if settled > 0 { Self.settledSends.increment(by: Int64(settled)) }
        } catch {
            throw StepFailure(.unavailable, "idempotency store: \(error.reason)")
        }
    }
}

/// The statuses `order_statuses` let through for a message: recorded as published once it is settled.
enum AdmittedStatusesKey: MessageValueKey {
    typealias Value = [(wamid: String, status: String, rank: Int)]
}

/// Step `order_statuses`: each (wamid, status) is published once, and statuses only move forward
/// per wamid (sent < delivered < read < played; `failed` once, whatever came before).
///
/// The step only reads the ledger to decide; the statuses it lets through are recorded as
/// published in `settled`, once their events are confirmed and the POST acknowledged. A crash
/// before that records nothing, and Meta's retry publishes them (at least once; never lost).
/// Two copies of one POST handled at the same moment may both publish.
struct OrderStatusesStep: Step {
    let ledger: any StatusLedger
    let ttl: Duration
    static let duplicates = Counter(label: "outbound_webhook_statuses_dropped_total", dimensions: [("reason", "duplicate")])
    static let outOfOrder = Counter(label: "outbound_webhook_statuses_dropped_total", dimensions: [("reason", "out_of_order")])

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard var batch = message.values[WebhookBatchKey.self], !batch.statuses.isEmpty else { return .next }
        let offered = batch.statuses.map { (wamid: $0.wamid, status: $0.status, rank: StatusRank.of($0.status)) }
        let admissions: [StatusAdmission]
        do {
            admissions = try await ledger.check(offered)
        } catch {
            throw StepFailure(.unavailable, "status ledger: \(error.reason)")
        }
        for (index, admission) in admissions.enumerated() {
            switch admission {
            case .publish: continue
            case .duplicate: Self.duplicates.increment()
            case .outOfOrder: Self.outOfOrder.increment()
            }
            batch.statuses[index].publish = false
        }
        message.values[AdmittedStatusesKey.self] = zip(offered, admissions).filter { $0.1 == .publish }.map(\.0)
        message.values[WebhookBatchKey.self] = batch
        return .next
    }

    /// The events are confirmed and the POST acknowledged: the statuses now count as published.
    func settled(_ message: Message, _ context: StepContext) async {
        guard let admitted = message.values[AdmittedStatusesKey.self], !admitted.isEmpty else { return }
        do {
            try await ledger.record(admitted, ttl: ttl)
        } catch {
            context.logger.warning("statuses published but not recorded; a redelivery publishes them again", metadata: ["error": .string(error.reason)])
        }
    }
}

/// Step `status_events`: the events of the batch (`delivery.<status>`, `webhook.<field>`), for the sink.
struct StatusEventsStep: Step {
    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        message.values[PreparedEventsKey.self] = message.values[WebhookBatchKey.self]?.events ?? []
        return .next
    }
}

extension StepPlugin {
    /// The `webhook_changes` step plugin.
    public static let webhookChanges = StepPlugin(
        name: "webhook_changes", summary: "parses a WhatsApp webhook body into statuses and other changes (status items without id or status are dropped and counted)",
        settings: SettingsSchema([]), defaultOnError: .deadLetter, provides: ["webhook_batch"],
        make: { _ in WebhookChangesStep() })

    /// The `correlate_statuses` step plugin.
    public static let correlateStatuses = StepPlugin(
        name: "correlate_statuses", summary: "finds each status's internalId: biz_opaque_callback_data, else the wamid: mapping",
        settings: CorrelateStatusesSettings.schema,
        defaultDegradation: .failOpen, provides: ["internal_ids"], requires: ["webhook_batch"],
        check: { step, _ in
            let key = step.settings[CorrelateStatusesSettings.idempotencyKey]
            guard key.fields != ["internalId"] else { return [] }
            return [.error(at: step.settings.location(of: CorrelateStatusesSettings.idempotencyKey) ?? step.location,
                           "step `\(step.name)`: idempotency_key \"\(key)\" cannot match the outbound pipeline's keys from a status, which knows only the internalId: use `{internalId}` as its only field")]
        },
        make: { context in
            let store = context.settings[CorrelateStatusesSettings.store]
            return CorrelateStatusesStep(ledger: try context.resources.get(store, as: (any StatusLedger).self),
                                         settlement: try context.resources.get(store, as: (any SendSettlement).self),
                                         idempotencyKey: context.settings[CorrelateStatusesSettings.idempotencyKey])
        })

    /// The `order_statuses` step plugin.
    public static let orderStatuses = StepPlugin(
        name: "order_statuses", summary: "publishes each (wamid, status) once and only forward (sent < delivered < read < played; failed once)",
        settings: OrderStatusesSettings.schema,
        defaultDegradation: .failOpen, requires: ["webhook_batch"],
        make: { context in
            OrderStatusesStep(ledger: try context.resources.get(context.settings[OrderStatusesSettings.store], as: (any StatusLedger).self),
                              ttl: context.settings[OrderStatusesSettings.ttl])
        })

    /// The `status_events` step plugin.
    public static let statusEvents = StepPlugin(
        name: "status_events", summary: "turns the batch into delivery.<status> and webhook.<field> events for the events sink",
        settings: SettingsSchema([]), requires: ["webhook_batch"],
        make: { _ in StatusEventsStep() })
}

/// The settings of the `correlate_statuses` step.
enum CorrelateStatusesSettings {
    static let store = Setting.resource("store", uses: "redis", default: "redis", "the `redis` resource holding the wamid: mappings and the outbound pipeline's idempotency keys")
    static let idempotencyKey = Setting.keyTemplate("idempotency_key", default: "idempotency:outbound:{internalId}",
                                                    "the outbound pipeline's idempotency key pattern: a status settles the send it names (SPEC 13); `{internalId}` its only field")
    static let schema = SettingsSchema(store, idempotencyKey)
}

/// The settings of the `order_statuses` step.
enum OrderStatusesSettings {
    static let store = Setting.resource("store", uses: "redis", default: "redis", "the `redis` resource holding each wamid's statuses")
    static let ttl = Setting.duration("ttl", default: .seconds(7 * 86_400), "how long a wamid's statuses are kept (Meta re-delivers for up to 7 days)")
    static let schema = SettingsSchema(store, ttl)
}
