import Foundation
import Metrics
import PipelineKit
import ValidatePlugin

/// Step `dispatch`: sends the prepared request at the rate WhatsApp allows and keeps the
/// `wamid` for `mark_completed`.
///
/// Before sending it waits (without using an attempt) while the sender is paused, while the
/// sender–recipient pair is held, and for its turn at the sender's send slots (the most urgent
/// lane first, SPEC 14). A `130429` answer slows the sender down and waits for a turn again;
/// a `131056` holds the pair for 4^X s, on every worker whose `dispatch` shares its `store`
/// (`SharedHolds`). A send not tried because another was opening the
/// connection to the Cloud API (`ConnectionOpener`) waits for a turn again too.
public struct DispatchStep: Step {
    public let client: any CloudAPISender
    /// Paused and disabled templates, marketing limits (SPEC 15).
    public let limits: AccountLimits
    /// What to do with a send whose answer was lost (`in_doubt_window`, `on_in_doubt`).
    public let inDoubtPolicy: InDoubtPolicy?
    /// Pair and marketing holds, shared with every worker through the step's `store`.
    public let holds: SharedHolds
    private let pacers = SenderPacers()
    /// Holds of a pair after consecutive `131056`s: 1 s, 4 s, 16 s, 64 s, 256 s.
    public static let pairHold = EscalationPolicy(first: .seconds(1), factor: 4, cap: .seconds(256))

    public init(client: any CloudAPISender, limits: AccountLimits = AccountLimits(templates: TemplateStates(store: nil)), inDoubt: InDoubtPolicy = .standard,
                holdStore: (any HoldStore)? = nil) {
        self.client = client
        self.limits = limits
        self.inDoubtPolicy = inDoubt
        holds = SharedHolds(store: holdStore, policies: [.pairHold: Self.pairHold, .spamLimit: AccountLimits.spamBackoff])
    }

    /// Every outcome names the sender a message would have gone out with, the default one included.
    public var reportedDefaults: [String: JSONValue] {
        client.configuration.defaultSender.map { ["phoneNumberId": .string($0)] } ?? [:]
    }

    public func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard let request = message.values[PreparedRequestKey.self] else {
            throw StepFailure(.permanent, "no request to send: the pipeline needs a `transform` step before `\(context.stepName)`")
        }
        let configuration = client.configuration
        guard let sender = configuration.sender(of: request) else {
            throw StepFailure(.senderSide, "no sender: set WHATSAPP_PHONE_NUMBER_ID (resource `phone_number_id`) or the message's phoneNumberId",
                              pauseScope: PauseScope(key: "sender:none", coversAll: false, cause: "no_sender"))
        }
        message.report("phoneNumberId", .string(sender))
        let flow = context.flow
        let now = context.clock.now()
        let scopes = configuration.pauseScopes(for: sender)
        let pair = "pair:\(sender):\(request.recipient)"
        // A probe this message took and does not use (it waits for something else) goes to the next
        // one; so does its place in the sender's line when it waits for something else than its turn.
        var probes: [String] = []
        func wait(_ key: String, _ until: Date, _ reason: WaitReason) -> StepOutcome {
            probes.forEach(flow.holds.returnProbe)
            if reason != .throughput { PacingPlace.stepAway(message) }
            return .wait(Wait(key: key, until: until, reason: reason))
        }
        let category = message.values[ValidatedMessageKey.self].map(configuration.category(of:))
        await holds.refresh(flow, at: now, logger: context.logger)
        var held = [(configuration.configurationScope.key, WaitReason.paused), (scopes.token.key, .paused), (scopes.sender.key, .paused), (pair, .pairHold)]
        if category == .marketing { held.append((AccountLimits.spamKey(sender), .spamLimit)) }
        for (key, reason) in held {
            switch flow.holds.check(key, at: now) {
            case .free: continue
            case .probe: probes.append(key)
            case .held(let hold): return wait(key, hold.until, reason)
            }
        }
        do {
            if let limited = try await limits.beforeSending(&message, request, sender: sender, configuration, context) {
                probes.forEach(flow.holds.returnProbe)
                PacingPlace.stepAway(message)
                return limited
            }
        } catch {
            probes.forEach(flow.holds.returnProbe)
            throw error
        }
        let pacer = pacers.pacer(sender, flow, client)
        if configuration.pacing {
            // A slot reserved before a hold or pause ended, or kept too long in a queue, is past: a new turn keeps the pace.
            let slot: Date
            let reserved = SendSlot.read(message, now: context.clock.now())
            if let reserved, reserved.timeIntervalSince(context.clock.now()) > -SendPacer.staleness {
                slot = reserved
            } else {
                if reserved != nil { pacer.slotWentUnused() }
                switch await PacingPlace.take(&message, pacer, now: context.clock.now()) {
                case .go(let granted): slot = granted
                case .wait(let until): return wait(pacer.key, until, .throughput)
                }
            }
            if slot.timeIntervalSince(context.clock.now()) > 0.001 {
                SendSlot.write(slot, &message)
                return wait(pacer.key, slot, .throughput)
            }
            SendSlot.write(nil, &message)
        }
        do {
            if let limited = try await limits.takeUnit(&message, request, sender: sender, configuration, context) {
                probes.forEach(flow.holds.returnProbe)
                return limited
            }
        } catch {
            probes.forEach(flow.holds.returnProbe)
            throw error
        }
        let startedAt = context.clock.now()
        do {
            message.values[DeliveryReceiptKey.self] = try await client.send(request, from: sender, logger: context.logger)
        } catch {
            // What the probes held out for is settled below, whatever the answer: the next message may probe.
            probes.forEach(flow.holds.returnProbe)
            // Refused (an answer, not a lost one) or never sent (the connection not opened, the request not fully
            // written): the messaging-limit unit it took goes back. Only a send in doubt may have reached a recipient.
            if error.kind != .inDoubt { await limits.giveBackUnit(&message, context) }
            if error.status != nil, error.kind != .configuration {
                // The Cloud API answered: it is reachable as configured, and unless it refused the sender, the sender and its token work.
                flow.holds.clear(configuration.configurationScope.key)
                if error.kind != .tokenRejected, error.kind != .senderRejected {
                    flow.holds.clear(scopes.sender.key)
                    flow.holds.clear(scopes.token.key)
                }
            }
            if let limited = try await limits.answered(error, &message, request, sender: sender, startedAt: startedAt, holds: holds, configuration, context) {
                return limited
            }
            switch error.kind {
            case .throughputLimit:
                Counter(label: "outbound_flow_control_total", dimensions: [("sender", sender), ("code", "130429")]).increment()
                pacer.slowDown()
                return await newTurn(&message, pacer, context)
            case .connectionOpening:
                return await newTurn(&message, pacer, context)
            case .pairRateLimit:
                Counter(label: "outbound_flow_control_total", dimensions: [("sender", sender), ("code", "131056")]).increment()
                let until = await holds.hold(pair, group: sender, policy: Self.pairHold, kind: .pairHold, reason: error.reason, startedAt: startedAt,
                                             flow, logger: context.logger)
                return .wait(Wait(key: pair, until: until, reason: .pairHold))
            case .tokenRejected:
                throw StepFailure(.senderSide, error.reason, code: error.code, pauseScope: scopes.token.because(error.kind.rawValue))
            case .senderRejected:
                throw StepFailure(.senderSide, error.reason, code: error.code, pauseScope: scopes.sender.because(error.kind.rawValue))
            case .configuration:
                throw StepFailure(.senderSide, error.reason, code: error.code, pauseScope: configuration.configurationScope)
            case .inDoubt:
                throw StepFailure(.inDoubt, error.reason)
            case .transient:
                throw StepFailure(.transient, error.reason, code: error.code)
            case .permanent, .templatePaused, .templateDisabled, .marketingDeclined, .marketingStopped, .spamLimit:
                throw StepFailure(.permanent, error.reason, code: error.code)
            }
        }
        Counter(label: "outbound_sends_total", dimensions: [("sender", sender)] + (message.lane.map { [("lane", $0.name)] } ?? [])).increment()
        pacer.speedUp()
        if category == .marketing { await holds.clear(AccountLimits.spamKey(sender), group: sender, startedAt: startedAt, flow, logger: context.logger) }
        await holds.clear(pair, group: sender, startedAt: startedAt, flow, logger: context.logger)
        flow.holds.clear(scopes.sender.key)
        flow.holds.clear(scopes.token.key)
        flow.holds.clear(configuration.configurationScope.key)
        return .next
    }

    /// A turn at the sender's slots for a message whose slot went unused (its send was refused or not tried).
    private func newTurn(_ message: inout Message, _ pacer: SendPacer, _ context: StepContext) async -> StepOutcome {
        switch await PacingPlace.take(&message, pacer, now: context.clock.now()) {
        case .go(let next):
            SendSlot.write(next, &message)
            return .wait(Wait(key: pacer.key, until: next, reason: .throughput))
        case .wait(let until):
            return .wait(Wait(key: pacer.key, until: until, reason: .throughput))
        }
    }

    /// The message leaves the worker (through the source, or to its end): its place in its sender's line steps away.
    public func undo(_ message: Message, _ context: StepContext) async {
        PacingPlace.stepAway(message)
    }
}
