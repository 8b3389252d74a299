// The bare I/O loop the worker is measured against: consume, SET NX EX, POST, SET, the
// outcome event published and confirmed (SPEC 9: before the ack), ack — the I/O the job needs,
// with the same libraries and concurrency, and no pipeline runtime, plugins, validation,
// logging or metrics. Written for the benchmark only.
import AMQPClient
import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import NIOSSL
import RedisClient

struct Options {
    var queue = ""
    var rabbitURL = "amqp://guest:guest@127.0.0.1:25680/%2F"
    var redisPort = 16379
    var apiURL = ""
    var concurrency = 32
    var prefetch = 64
    var caFile = ""
    /// The exchange of the outcome events ("" publishes none).
    var eventsExchange = "whatsapp.outbound.events"

    init(_ arguments: [String]) {
        var iterator = arguments.makeIterator()
        while let name = iterator.next() {
            let value = iterator.next() ?? ""
            switch name {
            case "--queue": queue = value
            case "--rabbitmq-url": rabbitURL = value
            case "--redis-port": redisPort = Int(value) ?? redisPort
            case "--api-url": apiURL = value
            case "--concurrency": concurrency = Int(value) ?? concurrency
            case "--prefetch": prefetch = Int(value) ?? prefetch
            case "--ca-file": caFile = value
            case "--events-exchange": eventsExchange = value
            default: break
            }
        }
    }
}

struct Envelope: Decodable {
    var internalId: String
    var to: String
}

let options = Options(Array(CommandLine.arguments.dropFirst()))
var logger = Logger(label: "baseline")
logger.logLevel = .error
let (consumer, events) = AMQPConsumer.streaming(urls: [try AMQPURL(options.rabbitURL)], queue: options.queue, prefetch: options.prefetch,
                                                 ackBatching: .forConsumer(prefetch: options.prefetch, concurrency: options.concurrency), logger: logger)
let redis = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: options.redisPort, poolSize: 4))
var configuration = HTTPClient.Configuration()
configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: 64)
configuration.httpVersion = .automatic
if !options.caFile.isEmpty {
    var tls = TLSConfiguration.makeClientConfiguration()
    tls.trustRoots = .file(options.caFile)
    configuration.tlsConfiguration = tls
}
let http = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
let url = options.apiURL + "/v24.0/1055/messages"
let eventsPublisher = AMQPPublisher(urls: [try AMQPURL(options.rabbitURL)], logger: logger)
if !options.eventsExchange.isEmpty {
    eventsPublisher.start()
    try await eventsPublisher.declare(AMQPExchangeDeclaration(name: options.eventsExchange))
}

/// The outcome event, persistent and confirmed, before the ack (as the worker's events sink does).
@Sendable func publishOutcome(_ status: String, of id: String) async {
    guard !options.eventsExchange.isEmpty else { return }
    try? await eventsPublisher.publish(exchange: options.eventsExchange, routingKey: "outbound.\(status)",
                                       body: Array(#"{"status":"\#(status)","internalId":"\#(id)"}"#.utf8), properties: .persistentJSON, mandatory: false)
}

@Sendable func handle(_ delivery: AMQPDelivery) async {
    guard let envelope = try? JSONDecoder().decode(Envelope.self, from: Data(delivery.body)) else {
        consumer.ack(delivery)
        return
    }
    let key = "idempotency:baseline:\(envelope.internalId)"
    let claimed = (try? await redis.send(["SET", key, #"{"status":"processing"}"#, "NX", "EX", "86400"])) == .status("OK")
    if claimed {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Authorization", value: "Bearer baseline")
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"messaging_product":"whatsapp","to":"\#(envelope.to)","type":"text","text":{"body":"x"}}"#))
        if let response = try? await http.execute(request, timeout: .seconds(10)) {
            _ = try? await response.body.collect(upTo: 1 << 16)
        }
        _ = try? await redis.send(["SET", key, #"{"status":"completed"}"#, "EX", "86400"])
    }
    await publishOutcome(claimed ? "sent" : "duplicate", of: envelope.internalId)
    consumer.ack(delivery)
}

consumer.start()
await withTaskGroup(of: Void.self) { group in
    var inFlight = 0
    for await event in events {
        guard case .delivery(let delivery) = event else { continue }
        while inFlight >= options.concurrency, await group.next() != nil { inFlight -= 1 }
        inFlight += 1
        group.addTask { await handle(delivery) }
    }
}
