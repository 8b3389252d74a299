import Metrics
import PipelineKit

/// The statuses `order_statuses` let through for a message: recorded as published once it is settled.
enum AdmittedStatusesKey: MessageValueKey {
    typealias Value = [(wamid: String, status: String, rank: Int)]
}

/// What a message holds in `StatusesInFlight` until its statuses are recorded or given up.
enum HeldWamidsKey: MessageValueKey {
    typealias Value = StatusesInFlight.Held
}

/// Step `order_statuses`: each (wamid, status) is published once, and statuses only move forward
/// per wamid (sent < delivered < read < played; `failed` once, whatever came before).
///
/// The step only reads the ledger to decide; the statuses it lets through are recorded as
/// published in `settled`, once their events are confirmed and the POST acknowledged. A crash
/// before that records nothing, and Meta's retry publishes them (at least once; never lost).
/// Meanwhile their wamids are held in this process (`StatusesInFlight`): a later POST with a
/// status of one of them is checked once they are recorded (waiting at most 5 s). Two processes
/// handling statuses of one wamid at the same moment may both publish.
struct OrderStatusesStep: Step {
    let ledger: any StatusLedger
    let ttl: Duration
    var inFlight = StatusesInFlight.shared
    static let duplicates = Counter(label: "outbound_webhook_statuses_dropped_total", dimensions: [("reason", "duplicate")])
    static let outOfOrder = Counter(label: "outbound_webhook_statuses_dropped_total", dimensions: [("reason", "out_of_order")])

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard var batch = message.values[WebhookBatchKey.self], !batch.statuses.isEmpty else { return .next }
        let offered = batch.statuses.map { (wamid: $0.wamid, status: $0.status, rank: StatusRank.of($0.status)) }
        let held = await inFlight.hold(Set(offered.map(\.wamid)))
        let admissions: [StatusAdmission]
        do {
            admissions = try await ledger.check(offered)
        } catch {
            inFlight.release(held.wamids, of: held)
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
        let admitted = zip(offered, admissions).filter { $0.1 == .publish }.map(\.0)
        let publishing = held.wamids.intersection(admitted.map(\.wamid))
        inFlight.release(held.wamids.subtracting(publishing), of: held)
        message.values[AdmittedStatusesKey.self] = admitted
        message.values[HeldWamidsKey.self] = StatusesInFlight.Held(holder: held.holder, wamids: publishing)
        message.values[WebhookBatchKey.self] = batch
        return .next
    }

    /// The events are confirmed and the POST acknowledged: the statuses now count as published.
    func settled(_ message: Message, _ context: StepContext) async {
        defer { release(message) }
        guard let admitted = message.values[AdmittedStatusesKey.self], !admitted.isEmpty else { return }
        do {
            try await ledger.record(admitted, ttl: ttl)
        } catch {
            context.logger.warning("statuses published but not recorded; a redelivery publishes them again", metadata: ["error": .string(error.reason)])
        }
    }

    /// Not published now (a later step failed, or the POST goes back): its wamids are free for the next.
    func undo(_ message: Message, _ context: StepContext) async {
        release(message)
    }

    private func release(_ message: Message) {
        if let held = message.values[HeldWamidsKey.self] { inFlight.release(held.wamids, of: held) }
    }
}

extension StepPlugin {
    /// The `order_statuses` step plugin.
    public static let orderStatuses = StepPlugin(
        name: "order_statuses", summary: "publishes each (wamid, status) once and only forward (sent < delivered < read < played; failed once)",
        settings: OrderStatusesSettings.schema,
        defaultDegradation: .failOpen, requires: [.webhookBatch],
        make: { context in
            OrderStatusesStep(ledger: try context.resources.get(context.settings[OrderStatusesSettings.store], as: (any StatusLedger).self),
                              ttl: context.settings[OrderStatusesSettings.ttl])
        })
}

/// The settings of the `order_statuses` step.
enum OrderStatusesSettings {
    static let store = Setting.resource("store", uses: "redis", default: "redis", "the `redis` resource holding each wamid's statuses")
    static let ttl = Setting.duration("ttl", default: .seconds(7 * 86_400), "how long a wamid's statuses are kept (Meta re-delivers for up to 7 days)")
    static let schema = SettingsSchema(store, ttl)
}
