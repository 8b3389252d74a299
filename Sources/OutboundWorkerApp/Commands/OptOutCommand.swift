import AMQPClient
import ArgumentParser
import EventsPlugin
import Foundation
import Logging
import PipelineKit
import RabbitMQPlugin
import RedisPlugin
import SuppressPlugin
import ValidatePlugin
import WhatsAppPlugin

/// `optout add|remove|check|list`: the opt-out lists of the pipeline's `suppress` step (SPEC 16).
struct OptOutCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "optout",
        abstract: "Manages the opt-out lists of the pipeline's `suppress` step: per sender (--sender ID) or for all senders.",
        subcommands: [Add.self, Remove.self, Check.self, List.self])

    struct Lists: ParsableArguments {
        @OptionGroup var options: PipelineOptions

        @Option(name: .long, help: "The sender phone number id whose list is meant; without it, the list for all senders.")
        var sender: String?

        func validate() throws {
            if let sender, MapKeys.digits.problem(sender) != nil { throw ValidationError("--sender \(sender): not a phone number id (1–32 digits)") }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Adds numbers to a list; each addition is an event optout.added (source cli).")
        @OptionGroup var lists: Lists
        @Argument(help: "Phone numbers (E.164: optional +, 8–15 digits).") var numbers: [String]

        func run() async throws { try await OptOutCommand.change(add: true, numbers, lists) }
    }

    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Removes numbers from a list; each removal is an event optout.removed (source cli).")
        @OptionGroup var lists: Lists
        @Argument(help: "Phone numbers.") var numbers: [String]

        func run() async throws { try await OptOutCommand.change(add: false, numbers, lists) }
    }

    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Prints `+DIGITS listed` or `+DIGITS not listed` for each number.",
            discussion: "With --sender: listed when on that sender's list or on the list for all senders (its marketing messages are suppressed).")
        @OptionGroup var lists: Lists
        @Argument(help: "Phone numbers.") var numbers: [String]

        func run() async throws {
            let normalised = try OptOutCommand.normalise(numbers)
            let (list, store) = try await OptOutCommand.list(lists)
            for number in normalised {
                let listed = try await ExitStatus.unavailableAsExit("opt-out lists") { () async throws(StoreUnavailable) in try await list.listing(number, sender: lists.sender) }
                print("\(number) \(listed == nil ? "not listed" : "listed")")
            }
            await store.shutdown()
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Prints the numbers on a list, one per line.")
        @OptionGroup var lists: Lists

        func run() async throws {
            let (list, store) = try await OptOutCommand.list(lists)
            let numbers = try await ExitStatus.unavailableAsExit("opt-out lists") { () async throws(StoreUnavailable) in try await list.numbers(sender: lists.sender) }
            numbers.forEach { print($0) }
            await store.shutdown()
        }
    }

    /// `+digits` for each number, or a usage error naming the first that is not one.
    static func normalise(_ numbers: [String]) throws -> [String] {
        if numbers.isEmpty { throw ValidationError("give at least one phone number") }
        return try numbers.map { number in
            guard let normalised = MessageValidator.normalisePhone(number) else { throw ValidationError("\(number): not an E.164 number (optional +, then 8–15 digits)") }
            return normalised
        }
    }

    /// The opt-out lists of the pipeline's `suppress` step, through its store.
    static func list(_ lists: Lists) async throws -> (OptOutList, any Resource) {
        let view = try lists.options.read { $0.loadSteps(using: StepPlugin.suppress.name, resources: [SuppressSettings.store.name], path: $1, variant: $2) }
        guard let step = view.steps.first else { throw ExitStatus.pipelineLacks("the pipeline has no `suppress` step: it has no opt-out lists") }
        let store = try await ResourceMaker.make(step.settings[SuppressSettings.store], for: step, in: view)
        guard let keyValue = store as? any KeyValueStore else { throw ExitStatus.pipelineLacks("resource `\(step.settings[SuppressSettings.store])` holds no lists") }
        return (OptOutList(store: keyValue, prefix: step.settings[SuppressSettings.prefix]), store)
    }

    /// Adds or removes each number, publishing an event for each change as it is made (when the
    /// pipeline has events). The events exchange is reached first: a broker that cannot be reached
    /// changes nothing (a change made without its event could never be published again — a second
    /// run finds the number listed already).
    static func change(add: Bool, _ numbers: [String], _ lists: Lists) async throws {
        let normalised = try normalise(numbers)
        let events = try await ChangeEvents.open(lists.options)
        defer { events?.stop() }
        let (list, store) = try await list(lists)
        for number in normalised {
            let changed = try await ExitStatus.unavailableAsExit("opt-out lists") { () async throws(StoreUnavailable) in
                add ? try await list.add(number, sender: lists.sender) : try await !list.remove(number, sender: lists.sender).isEmpty
            }
            print("\(number) \(changed ? (add ? "added" : "removed") : (add ? "already listed" : "not listed"))")
            if changed, let events {
                try await events.publish(OptOutEvent.prepared(added: add, recipient: number, sender: lists.sender, source: .cli, at: Date()), of: number)
            }
        }
        await store.shutdown()
    }

    /// The pipeline's events exchange, reached before any list changes.
    private struct ChangeEvents {
        let publisher: AMQPPublisher
        let exchange: String

        /// Connects and declares the exchange; nil without an `events:` section; exit 1 for one that does
        /// not load (its diagnostics printed), exit 3 for a broker that cannot be reached.
        static func open(_ options: PipelineOptions) async throws -> ChangeEvents? {
            let environment = ProcessEnvironment.load()
            let loaded = PipelineLoader(registry: BuiltinPlugins.registry, environment: environment).loadEvents(path: options.file(environment), variant: options.variant(environment), optional: true)
            guard let section = loaded.events else {
                if loaded.diagnostics.isEmpty { return nil }
                printDiagnostics(loaded.diagnostics)
                throw ExitStatus.invalid
            }
            var logger = Logger(label: "outbound-worker.optout")
            logger.logLevel = .critical
            let events = ChangeEvents(publisher: AMQPPublisher(urls: try BrokerConnection.urls(section.settings), logger: logger),
                                      exchange: section.settings[EventsSettings.exchangeName])
            events.publisher.start()
            do {
                try await events.publisher.declare(AMQPExchangeDeclaration(name: events.exchange))
            } catch {
                events.stop()
                FileHandle.standardError.write(Data("events exchange \(events.exchange) unreachable, nothing changed: \(error)\n".utf8))
                throw ExitStatus.cannotStart
            }
            return events
        }

        /// Publishes the event of `number`'s change, confirmed; exit 3 when it is not (its change stays made).
        func publish(_ event: PreparedEvent, of number: String) async throws {
            do {
                try await publisher.publish(exchange: exchange, routingKey: event.routingKey, body: event.body.encodedBytes(), properties: .persistentJSON, mandatory: false)
            } catch {
                FileHandle.standardError.write(Data("\(number) changed, but its event was not published to \(exchange) (the numbers after it are unchanged): \(error)\n".utf8))
                throw ExitStatus.cannotStart
            }
        }

        func stop() {
            publisher.stop()
        }
    }
}
