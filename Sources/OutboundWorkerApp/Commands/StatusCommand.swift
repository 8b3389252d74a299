import AMQPClient
import ArgumentParser
import Foundation
import IdempotencyPlugin
import Logging
import PipelineKit
import RabbitMQPlugin

/// `status ID…`: what became of messages — their idempotency key and their copies in `.dead`.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "For each internalId: its idempotency key (absent, processing by whom since when, completed with wamid), TTL, and copies waiting in {queue}.dead.",
        discussion: "The dead-letter queue is read without being consumed (each letter returns to it); one longer than \(DeadLetterScan.maximumScanned) letters is not read.")

    enum Format: String, ExpressibleByArgument, CaseIterable { case text, json }

    @OptionGroup var options: PipelineOptions

    @Option(name: .long, help: "text, or json for scripts.")
    var format = Format.text

    @Argument(help: "The messages' internalIds.")
    var ids: [String]

    func validate() throws {
        if ids.isEmpty { throw ValidationError("give at least one internalId") }
    }

    func run() async throws {
        // The source, the idempotency step and its store: no Cloud API token needed.
        let view = try options.read { $0.loadSteps(using: StepPlugin.idempotency.name, path: $1, variant: $2) }
        let topology = try QueueTopology(source: view.source.settings, worker: view.worker)
        let urls = try BrokerConnection.urls(view.source.settings)

        var reports = ids.map { MessageStatus(internalId: $0, deadQueue: topology.deadQueue) }
        var complete = true
        if let step = view.steps.first {
            let store = try await ResourceMaker.make(step.settings[IdempotencySettings.store], for: step, in: view)
            for index in reports.indices {
                let lookup = try await KeyLookup.read(internalId: reports[index].internalId, settings: step.settings, store: store)
                reports[index].record(lookup)
                if case .unavailable = lookup.state { complete = false }
            }
            await store.shutdown()
        } else {
            FileHandle.standardError.write(Data("the pipeline has no idempotency step: no key to read\n".utf8))
        }
        do {
            switch try await DeadLetterScan(urls: urls, deadQueue: topology.deadQueue).letters(of: Set(ids)) {
            case .scanned(_, let letters):
                for index in reports.indices { reports[index].record(letters[reports[index].internalId] ?? []) }
            case .tooLong(let present):
                for index in reports.indices { reports[index].deadLetters.note = "not read: \(present) letters (over \(DeadLetterScan.maximumScanned))" }
            }
        } catch {
            complete = false
            let note = error is DeadLetterReaders.Busy ? "not read: \(error)" : "broker unavailable: \(error)"
            for index in reports.indices { reports[index].deadLetters.note = note }
        }
        switch format {
        case .text: reports.forEach { print($0.text) }
        case .json:
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(reports), as: UTF8.self))
        }
        if !complete { throw ExitStatus.cannotStart }
    }
}
