import Metrics
import PipelineKit
import RedisPlugin

/// Step `correlate_statuses`: the internalId of each status — `biz_opaque_callback_data` when
/// it came with one, else the wamid mapping `mark_completed` wrote — and, for a status that
/// names its internalId, the settlement of that send in the outbound pipeline's keys (SPEC 13: a
/// key still processing or in doubt becomes completed with the status's wamid).
struct CorrelateStatusesStep: Step {
    let ledger: any StatusLedger
    let settlement: any SendSettlement
    /// The outbound pipeline's idempotency key pattern (`{internalId}` its only field).
    let idempotencyKey: KeyTemplate
    static let settledSends = Counter(label: "outbound_webhook_sends_settled_total")
    /// Whether statuses continue their sends' traces (a tracer was bootstrapped).
    let traced = MessageTracing().isOn

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard var batch = message.values[WebhookBatchKey.self] else { return .next }
        for index in batch.statuses.indices { batch.statuses[index].internalID = batch.statuses[index].callbackData.flatMap { $0.isEmpty ? nil : $0 } }
        // Traced, every status reads the mapping: it holds the send's trace too.
        let looked = batch.statuses.filter { traced || $0.internalID == nil }.map(\.wamid)
        message.values[WebhookBatchKey.self] = batch
        try await settle(batch, context)
        guard !looked.isEmpty else { return .next }
        let found: [String: MappedSend]
        do {
            found = try await ledger.sends(of: Array(Set(looked)))
        } catch {
            throw StepFailure(.unavailable, "status ledger: \(error.reason)")
        }
        for index in batch.statuses.indices {
            guard let send = found[batch.statuses[index].wamid] else { continue }
            if batch.statuses[index].internalID == nil { batch.statuses[index].internalID = send.internalID }
            batch.statuses[index].sendTrace = send.traceparent
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

extension StepPlugin {
    /// The `correlate_statuses` step plugin.
    public static let correlateStatuses = StepPlugin(
        name: "correlate_statuses", summary: "finds each status's internalId: biz_opaque_callback_data, else the wamid mapping",
        settings: CorrelateStatusesSettings.schema,
        defaultDegradation: .failOpen, requires: [.webhookBatch],
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
}

/// The settings of the `correlate_statuses` step.
enum CorrelateStatusesSettings {
    static let store = Setting.resource("store", uses: "redis", default: "redis", "the `redis` resource holding the wamid mapping and the outbound pipeline's idempotency keys")
    static let idempotencyKey = Setting.keyTemplate("idempotency_key", default: "idempotency:outbound:{internalId}",
                                                    "the outbound pipeline's idempotency key pattern: a status settles the send it names (SPEC 13); `{internalId}` its only field")
    static let schema = SettingsSchema(store, idempotencyKey)
}
