import Foundation
import Metrics
import PipelineKit
import RedisPlugin
import ValidatePlugin
import WebhookPlugin
import WhatsAppPlugin

/// Step `optout_keywords` (statuses pipeline, SPEC 16): an inbound text that is one of the opt-out
/// keywords adds its sender to the opt-out list of the business number it wrote to; one of the
/// resume keywords removes it. Each change is an event (`optout.added` / `optout.removed`) beside
/// the batch's others, so it comes after `status_events`.
///
/// The list changes when the step runs. If the events are then refused (the POST is answered 503
/// and Meta sends it again), `undo` takes back exactly the changes this run made, so the retry makes
/// them — and publishes their events — again.
struct OptOutKeywordsStep: Step {
    let list: OptOutList
    let optOut: Set<String>
    let resume: Set<String>
    static let changes = Counter(label: "outbound_optout_changes_total", dimensions: [("source", "keyword")])

    func run(_ message: inout Message, _ context: StepContext) async throws -> StepOutcome {
        guard let batch = message.values[WebhookBatchKey.self] else { return .next }
        var made: [OptOutChange] = []
        var events: [PreparedEvent] = []
        for var request in Self.requests(in: batch, optOut: optOut, resume: resume) {
            let changed: Bool
            do {
                if request.add {
                    changed = try await list.add(request.recipient, sender: request.sender)
                } else {
                    request.removedForms = try await list.remove(request.recipient, sender: request.sender)
                    changed = !request.removedForms.isEmpty
                }
            } catch {
                // The runtime undoes the steps before a failing one, not the step itself: the changes made are taken back
                // here, so Meta's retry of the POST makes them — and publishes their events — again.
                await takeBack(made, context)
                throw StepFailure(.unavailable, "opt-out lists: \(error.reason)")
            }
            guard changed else { continue }
            made.append(request)
            events.append(OptOutEvent.prepared(added: request.add, recipient: request.recipient, sender: request.sender, source: .keyword, at: context.clock.now()))
        }
        message.values[OptOutChangesKey.self] = made
        if !events.isEmpty {
            Self.changes.increment(by: Int64(events.count))
            message.values[PreparedEventsKey.self] = (message.values[PreparedEventsKey.self] ?? []) + events
        }
        return .next
    }

    /// The events were refused (or a later step failed): the changes of this run are taken back.
    func undo(_ message: Message, _ context: StepContext) async {
        await takeBack(message.values[OptOutChangesKey.self] ?? [], context)
    }

    /// Takes `changes` back, the last first (a STOP and a START of one writer in one batch end as they began).
    private func takeBack(_ changes: [OptOutChange], _ context: StepContext) async {
        for change in changes.reversed() {
            do {
                if change.add {
                    try await list.takeBackAddition(of: change.recipient, sender: change.sender)
                } else {
                    try await list.putBack(change.removedForms, sender: change.sender)
                }
            } catch {
                context.logger.warning("an opt-out change whose event was not published could not be taken back", metadata: ["error": .string(error.reason)])
            }
        }
    }

    /// What the inbound texts of a batch ask for, in order: `+digits` of the writer, the business number written to.
    /// A change that names no business number (`metadata.phone_number_id`) asks for nothing: it is no
    /// writer's word on the list for every sender, which only an operator changes (`optout add`).
    static func requests(in batch: WebhookBatch, optOut: Set<String>, resume: Set<String>) -> [OptOutChange] {
        batch.changes.filter { $0.field == "messages" }.flatMap { change -> [OptOutChange] in
            guard let sender = change.value["metadata"]?["phone_number_id"]?.stringValue, !sender.isEmpty else { return [] }
            return (change.value["messages"]?.arrayValue ?? []).compactMap { inbound in
                guard inbound["type"]?.stringValue == "text", let body = inbound["text"]?["body"]?.stringValue,
                      let from = inbound["from"]?.stringValue, let recipient = MessageValidator.normalisePhone(from) else { return nil }
                let word = keyword(body)
                if optOut.contains(word) { return OptOutChange(recipient: recipient, sender: sender, add: true) }
                if resume.contains(word) { return OptOutChange(recipient: recipient, sender: sender, add: false) }
                return nil
            }
        }
    }

    /// The whole message as a keyword: upper case, surrounding whitespace and punctuation trimmed.
    static func keyword(_ text: String) -> String {
        text.trimmingCharacters(in: .whitespacesAndNewlines.union(.punctuationCharacters).union(.symbols)).uppercased()
    }
}

/// One change an inbound text asks for.
struct OptOutChange: Sendable, Equatable {
    var recipient: String
    var sender: String
    var add: Bool
    /// A removal's: the forms of the number that were on the list (what a take-back puts back).
    var removedForms: [String] = []
}

/// The changes a run of `optout_keywords` made (what `undo` takes back).
enum OptOutChangesKey: MessageValueKey {
    typealias Value = [OptOutChange]
}

/// The settings of the `optout_keywords` step.
enum OptOutKeywordsSettings {
    static let optOut = Setting.strings("optout_keywords", default: ["STOP", "UNSUBSCRIBE", "PARAR", "SAIR"],
                                        "inbound texts that add their writer to the opt-out list of the number written to (the whole message, any case, punctuation trimmed)")
    static let resume = Setting.strings("resume_keywords", default: ["START"], "inbound texts that take the writer off that list again")

    /// The lists as the `suppress` step names them: the same `store` and `prefix`.
    static let schema = SettingsSchema(SuppressSettings.store, SuppressSettings.prefix, optOut, resume)
}

extension StepPlugin {
    /// The `optout_keywords` step plugin.
    public static let optOutKeywords = StepPlugin(
        name: "optout_keywords",
        summary: "inbound STOP / START (the keywords are settings) add or remove the writer on the opt-out list of the number written to",
        settings: OptOutKeywordsSettings.schema,
        defaultOnError: .deadLetter,
        defaultDegradation: .failClosed,
        requires: [.webhookBatch],
        check: eventsSectionExpected,
        make: { context in
            let settings = context.settings
            return OptOutKeywordsStep(
                list: try SuppressSettings.list(settings, context.resources),
                optOut: Set(settings[OptOutKeywordsSettings.optOut].map(OptOutKeywordsStep.keyword)),
                resume: Set(settings[OptOutKeywordsSettings.resume].map(OptOutKeywordsStep.keyword)))
        }
    )
}
