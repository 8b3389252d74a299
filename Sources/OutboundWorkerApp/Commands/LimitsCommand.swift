import ArgumentParser
import Foundation
import PipelineKit
import WhatsAppPlugin

/// `limits`: what Meta's account limits leave (SPEC 15) — each business portfolio's messaging
/// limit and how much of it the last 24 h used, and the templates Meta paused or disabled.
struct LimitsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "limits",
        abstract: "Prints each business portfolio's messaging limit and what is left of it, and the templates Meta paused or disabled.")

    @OptionGroup var options: PipelineOptions

    func run() async throws {
        let view = try options.read {
            $0.loadSteps(using: StepPlugin.dispatch.name, resources: [DispatchSettings.store.name, DispatchSettings.client.name], path: $1, variant: $2)
        }
        guard let step = view.steps.first else { throw ExitStatus.pipelineLacks("the pipeline has no `dispatch` step") }
        guard let client = view.resources.first(where: { $0.name == step.settings[DispatchSettings.client] }),
              let storeName = step.settings[DispatchSettings.store] else {
            throw ExitStatus.pipelineLacks("`dispatch` names no `store`: limits and template states are not shared")
        }
        let resource = try await ResourceMaker.make(storeName, for: step, in: view)
        guard let store = resource as? any KeyValueStore, let window = resource as? any MessagingLimitStore else {
            throw ExitStatus.pipelineLacks("resource `\(storeName)` keeps no limits")
        }
        let announced = AnnouncedLimits(store: store)
        let configuration = CloudAPIConfiguration(settings: client.settings)
        for portfolio in configuration.portfolios {
            let senders = portfolio.senders.sorted().joined(separator: ", ")
            guard let limit = await announced.limit(of: portfolio, at: Date()) else {
                print("portfolio \(portfolio.name) (senders \(senders)): unlimited")
                continue
            }
            let counted = try await ExitStatus.unavailableAsExit("limits") { () async throws(StoreUnavailable) in
                try await window.counted(MessagingLimits.key(portfolio.name), window: MessagingLimits.window)
            }
            let usable = MessagingLimits.allowed(of: limit)
            print("portfolio \(portfolio.name) (senders \(senders)): \(counted) of \(limit) recipients in the last 24 h; \(max(0, usable - counted)) left (\(usable) usable outside the urgent lane, \(limit) in it)")
        }
        let keys = try await ExitStatus.unavailableAsExit("limits") { () async throws(StoreUnavailable) in try await store.keys(prefix: "template:") }
        // (The statuses pipeline keeps every account's states; those of accounts no sender is listed with are read by no worker.)
        let listed = Set(configuration.senderAccounts.values)
        for key in keys {
            let (template, account) = TemplateStates.parts(ofKey: key)
            if let account, !listed.contains(account) { continue }
            let value = try await ExitStatus.unavailableAsExit("limits") { () async throws(StoreUnavailable) in try await store.read(key)?.value }
            let described = template + (account.map { " of account \($0)" } ?? "")
            switch TemplateStates.decode(value) {
            case .paused(let until)?: print("template \(described): paused until \(UTCTimestamp.format(until))")
            case .disabled?: print("template \(described): disabled")
            case nil: continue
            }
        }
        for (sender, account) in configuration.senderAccounts.sorted(by: { $0.key < $1.key }) {
            if let named = await announced.contradiction(of: account, for: sender, at: Date()) {
                print("sender \(sender): `sender_accounts` gives account \(account), Meta's webhooks name \(named): that account's template updates do not reach it")
            }
        }
        await resource.shutdown()
    }
}
