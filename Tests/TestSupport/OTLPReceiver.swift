import Foundation
import Hummingbird
import NIOCore
import PipelineKit
import Synchronization

/// A local OTLP/HTTP collector for the tests: takes `POST /v1/traces` in the JSON encoding
/// (`OTEL_EXPORTER_OTLP_PROTOCOL=http/json`) and keeps every span it decodes.
public final class OTLPReceiver: Sendable {
    /// One exported span, with its ids in lowercase hex.
    public struct Span: Sendable {
        public var traceID: String
        public var spanID: String
        public var parentSpanID: String?
        public var name: String
        /// OTLP's `SpanKind`: 1 internal, 2 server, 3 client, 4 producer, 5 consumer.
        public var kind: Int
        /// Attribute values as text (strings, numbers, booleans).
        public var attributes: [String: String]
        /// The spans it links to: (trace id, span id).
        public var links: [(traceID: String, spanID: String)]
        /// Whether its status says it failed (OTLP's `STATUS_CODE_ERROR`).
        public var isError: Bool
    }

    private let received = Mutex<[Span]>([])
    private let task = Mutex<Task<Void, any Error>?>(nil)

    public init() {}

    public var spans: [Span] { received.withLock { $0 } }

    /// Starts listening on a free loopback port; returns the endpoint for `OTEL_EXPORTER_OTLP_ENDPOINT`.
    public func start() async throws -> String {
        let router = Router()
        router.post("/v1/traces") { request, _ -> Response in
            let body = try await request.body.collect(upTo: 16 << 20)
            guard let json = try? JSONValue(parsing: Array(buffer: body)) else { return Response(status: .badRequest) }
            let spans = Self.spans(in: json)
            self.received.withLock { $0.append(contentsOf: spans) }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: "{}")))
        }
        let (portStream, portSink) = AsyncStream.makeStream(of: Int.self)
        let app = Application(router: router, configuration: .init(address: .hostname("127.0.0.1", port: 0)), onServerRunning: { channel in
            portSink.yield(channel.localAddress?.port ?? 0)
        })
        task.withLock { $0 = Task { try await app.runService(gracefulShutdownSignals: []) } }
        var iterator = portStream.makeAsyncIterator()
        guard let port = await iterator.next(), port > 0 else { throw TestFailure("OTLP receiver did not start") }
        return "http://127.0.0.1:\(port)"
    }

    public func stop() {
        task.withLock { $0?.cancel() }
    }

    /// The spans of an `ExportTraceServiceRequest` in JSON: `resourceSpans[].scopeSpans[].spans[]`.
    static func spans(in request: JSONValue) -> [Span] {
        var spans: [Span] = []
        for resource in request["resourceSpans"]?.arrayValue ?? [] {
            for scope in resource["scopeSpans"]?.arrayValue ?? [] {
                for span in scope["spans"]?.arrayValue ?? [] {
                    guard let traceID = hex(span["traceId"]), let spanID = hex(span["spanId"]), let name = span["name"]?.stringValue else { continue }
                    var attributes: [String: String] = [:]
                    for attribute in span["attributes"]?.arrayValue ?? [] {
                        guard let key = attribute["key"]?.stringValue, let value = attribute["value"] else { continue }
                        attributes[key] = value["stringValue"]?.stringValue ?? value["intValue"]?.stringValue
                            ?? value["intValue"]?.numberValue.map { String(Int($0)) } ?? value["doubleValue"]?.numberValue.map { "\($0)" }
                    }
                    let links = (span["links"]?.arrayValue ?? []).compactMap { link -> (String, String)? in
                        guard let trace = hex(link["traceId"]), let id = hex(link["spanId"]) else { return nil }
                        return (trace, id)
                    }
                    let parent = hex(span["parentSpanId"])
                    spans.append(Span(traceID: traceID, spanID: spanID, parentSpanID: parent?.isEmpty == false ? parent : nil, name: name,
                                      kind: span["kind"]?.numberValue.map { Int($0) } ?? 0, attributes: attributes, links: links,
                                      isError: span["status"]?["code"]?.numberValue == 2 || span["status"]?["code"]?.stringValue == "STATUS_CODE_ERROR"))
                }
            }
        }
        return spans
    }

    /// An id as OTLP/JSON has it — hex, as the specification says, or base64, as protobuf's JSON
    /// mapping of bytes gives (swift-otel's encoder) — in lowercase hex.
    static func hex(_ value: JSONValue?) -> String? {
        guard let text = value?.stringValue else { return nil }
        // (Base64 of a 16-byte trace id is 24 characters, of an 8-byte span id 12: never 32 or 16.)
        if text.count == 32 || text.count == 16, text.allSatisfy(\.isHexDigit) { return text.lowercased() }
        guard let bytes = Data(base64Encoded: text) else { return nil }
        return bytes.map { String(format: "%02x", $0) }.joined()
    }
}
