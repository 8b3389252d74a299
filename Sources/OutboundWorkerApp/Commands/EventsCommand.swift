import AMQPClient
import ArgumentParser
import EventsPlugin
import Foundation
import Logging
import PipelineKit
import RabbitMQPlugin

/// `events`: prints the events of the pipeline's events exchange as they come, one JSON line each.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "events", abstract: "Print the pipeline's outcome and status events as they are published (a queue of its own, bound to the events exchange).")

    @OptionGroup var options: PipelineOptions

    @Option(name: .long, help: "Binding key: outbound.#, delivery.read, webhook.# … (default: every event).")
    var routingKey = "#"

    @Option(name: .long, help: "Stop after this many events.")
    var count: Int?

    func validate() throws {
        if let count, count < 1 { throw ValidationError("--count must be 1 or more (without it: every event until Ctrl-C)") }
    }

    func run() async throws {
        // Only the events section is read: watching needs no Cloud API token.
        let events = try options.read { $0.loadEvents(path: $1, variant: $2) }
        let urls = try BrokerConnection.urls(events.settings)
        let exchange = events.settings[EventsSettings.exchangeName]
        var logger = Logger(label: "outbound-worker.events")
        logger.logLevel = .error
        let publisher = AMQPPublisher(urls: urls, logger: logger)
        publisher.start()
        defer { publisher.stop() }
        // A queue of this command's own, removed by the broker a minute after it is last used.
        let queue = "outbound-worker.events.\(UUID().uuidString.prefix(8).lowercased())"
        do {
            try await publisher.declare(AMQPExchangeDeclaration(name: exchange))
            try await publisher.declare(AMQPQueueDeclaration(name: queue, durable: false, arguments: ["x-expires": .int(60_000)]))
            try await publisher.bind(AMQPBinding(queue: queue, exchange: exchange, routingKey: routingKey))
        } catch {
            // The broker, not the input (exit 1 before): SPEC 2's exit 3.
            FileHandle.standardError.write(Data("events: cannot bind a queue to \(exchange): \(error)\n".utf8))
            throw ExitStatus.cannotStart
        }
        FileHandle.standardError.write(Data("events of \(exchange) (\(routingKey)); Ctrl-C stops\n".utf8))
        let (consumer, deliveries) = AMQPConsumer.streaming(urls: urls, queue: queue, prefetch: 100, logger: logger)
        consumer.start()
        defer { consumer.stop() }
        var printed = 0
        var lost = false
        for await event in deliveries {
            // Once an outage (the consumer reports each failed attempt to reconnect): the queue keeps
            // collecting events for a minute, but not across a broker restart (it is not durable).
            switch event {
            case .disconnected(let reason) where !lost:
                lost = true
                FileHandle.standardError.write(Data("events: connection lost (\(reason)); reconnecting — events are missed only if the broker restarts or this stays down over a minute\n".utf8))
            case .connected where lost:
                lost = false
                FileHandle.standardError.write(Data("events: reconnected\n".utf8))
            default:
                break
            }
            guard case .delivery(let delivery) = event else { continue }
            FileHandle.standardOutput.write(Data("\(delivery.routingKey) ".utf8) + Data(delivery.body) + Data("\n".utf8))
            consumer.ack(delivery)
            printed += 1
            if let count, printed >= count { break }
        }
    }
}
