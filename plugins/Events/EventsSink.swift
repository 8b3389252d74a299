import AMQPClient
import Foundation
import Logging
import Metrics
import PipelineKit
import Synchronization

/// The `rabbitmq_events` sink: every final outcome, or the events the steps prepared, published
/// persistent to a durable topic exchange and confirmed before the message is settled. Events of
/// one message go out together and are confirmed together with those of other messages.
final class EventsSink: OutcomeSink {
    private let settings: EventsSettings
    private let publisher: AMQPPublisher
    private let context: SinkBuildContext
    private let declared = Atomic<Bool>(false)
    private let published = Counter(label: "outbound_events_published_total")
    private let refused = Counter(label: "outbound_events_failed_total")

    init(settings: EventsSettings, context: SinkBuildContext) {
        self.settings = settings
        self.context = context
        publisher = AMQPPublisher(urls: settings.urls, logger: context.logger)
    }

    /// Starts the publisher and declares the exchange; a broker that is not up yet is no error
    /// (the exchange is declared before the first event instead), a conflicting exchange is.
    func start() async throws {
        publisher.start()
        do {
            try await declareExchange()
        } catch {
            if case .broker = error { throw error }
            if error.isRefusedIdentity { throw error }
            context.logger.warning("events exchange not declared yet; it will be before the first event", metadata: ["error": "\(error)"])
        }
    }

    private func declareExchange() async throws(AMQPError) {
        guard !declared.load(ordering: .acquiring) else { return }
        try await publisher.declare(AMQPExchangeDeclaration(name: settings.exchange))
        declared.store(true, ordering: .releasing)
    }

    func record(_ outcome: Outcome) async throws {
        let events = Self.events(of: outcome, settings, context)
        guard !events.isEmpty else { return }
        try await declareExchange()
        let publisher = self.publisher
        let exchange = settings.exchange
        let messageTrace = outcome.message.trace?.headers ?? [:]
        // Not mandatory: with no queue bound, the exchange drops events, as its owner decided.
        let messages = events.map { event in
            AMQPPublisher.Message(exchange: exchange, routingKey: event.routingKey, body: event.body.encodedBytes(),
                                  properties: Self.properties(tracing: event.traceHeaders.isEmpty ? messageTrace : event.traceHeaders), mandatory: false)
        }
        do {
            // In order: a message's statuses (`sent`, then `delivered`) reach consumers as they were ranked.
            try await publisher.publish(inOrder: messages)
            published.increment(by: Int64(events.count))
        } catch {
            refused.increment()
            throw error
        }
    }

    /// Persistent JSON, with the trace the event continues as W3C headers (a consumer's span goes on from it).
    static func properties(tracing trace: [String: String]) -> AMQPProperties {
        guard !trace.isEmpty else { return .persistentJSON }
        var properties = AMQPProperties.persistentJSON
        for (name, value) in trace.sorted(by: { $0.key < $1.key }) { properties.headers[name] = .string(value) }
        return properties
    }

    func shutdown() async {
        publisher.stop()
    }

    /// The events steps prepared (when the message was taken), else the outcome's own event; then
    /// the events steps added beside it.
    static func events(of outcome: Outcome, _ settings: EventsSettings, _ context: SinkBuildContext) -> [PreparedEvent] {
        let accompanying = outcome.message.values[AccompanyingEventsKey.self] ?? []
        if let prepared = outcome.message.values[PreparedEventsKey.self] {
            if case .ack = outcome.decision { return prepared + accompanying }
            return accompanying
        }
        guard let status = OutboundEvent.status(of: outcome.decision, includeRetries: settings.includeRetries),
              settings.publishes(status) else { return accompanying }
        let body = OutboundEvent.body(status: status, outcome: outcome, pipeline: context.pipelineName, worker: context.workerID, at: Date())
        return [PreparedEvent(routingKey: "outbound.\(status)", body: body)] + accompanying
    }
}

extension SinkPlugin {
    /// The `rabbitmq_events` sink plugin.
    public static let rabbitMQEvents = SinkPlugin(
        name: "rabbitmq_events",
        summary: "outcome and status events, persistent on a durable topic exchange, confirmed before each message is settled",
        settings: EventsSettings.schema,
        render: { outcome, context in
            (try? EventsSettings(context.settings)).map { EventsSink.events(of: outcome, $0, context) } ?? []
        },
        make: { context in EventsSink(settings: try EventsSettings(context.settings), context: context) }
    )
}
