@testable import AMQPClient
import Foundation
@testable import RabbitMQPlugin
import Testing

/// What a retry copy or a dead letter carries of its original's headers: the trace context as it
/// came unless the runtime gave the message another (tracing on, and none it could continue).
struct CopyPropertiesTests {
    static let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    static func original(_ headers: [(String, AMQPValue)]) -> AMQPDelivery {
        var properties = AMQPProperties.persistentJSON
        for (key, value) in headers { properties.headers.entries.append((key: key, value: value)) }
        return AMQPDelivery(deliveryTag: 1, connectionGeneration: 1, redelivered: false, exchange: "", routingKey: "q", body: [], properties: properties)
    }

    @Test func aTraceAsItCameStaysAsItCame() {
        // Bytes, a value no tracer reads, and the order: untouched when the trace is the one received.
        let delivery = Self.original([("traceparent", .bytes(Array(Self.parent.utf8))), ("tracestate", .int(7)), ("x-other", .string("kept"))])
        let copy = RabbitMQSource.copyProperties(of: delivery, firstSeen: nil, trace: RabbitMQSource.traceHeaders(of: delivery))
        #expect(copy.headers.entries.map(\.key) == ["traceparent", "tracestate", "x-other"])
        #expect(copy.headers["traceparent"] == .bytes(Array(Self.parent.utf8)) && copy.headers["tracestate"] == .int(7))
    }

    @Test func aTraceTheRuntimeGaveReplacesTheOriginals() {
        let delivery = Self.original([("traceparent", .string("garbage")), ("tracestate", .string("a=1")), ("x-other", .string("kept"))])
        let copy = RabbitMQSource.copyProperties(of: delivery, firstSeen: nil, trace: ["traceparent": Self.parent])
        #expect(copy.headers["traceparent"] == .string(Self.parent))
        #expect(copy.headers["tracestate"] == nil, "no tracestate of another trace")
        #expect(copy.headers["x-other"] == .string("kept"))
    }
}
