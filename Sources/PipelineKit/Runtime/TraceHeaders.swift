import Tracing

/// W3C trace-context headers (`traceparent`, `tracestate`) as strings, the way sources and sinks
/// carry them (AMQP headers, HTTP headers): what an `Instrument` reads from and writes into.
public enum TraceHeaders {
    /// The longest `tracestate` kept, in bytes, and its most members: W3C lets a receiver drop a
    /// longer one (it must pass on at least 512 bytes and 32 members). Beyond, it would be parsed
    /// for every delivery and attempt and copied onto every event.
    public static let longestTracestate = 512
    /// The most `tracestate` members kept (W3C's bound; see `longestTracestate`).
    public static let mostTracestateMembers = 32

    /// The headers of `context` (empty when it has no span), as `instrument` (the tracer) writes them.
    public static func of(_ context: ServiceContext, via instrument: any Instrument) -> [String: String] {
        var headers: [String: String] = [:]
        instrument.inject(context, into: &headers, using: Injector())
        return headers
    }

    /// What of `headers` a message goes on with: its `traceparent` when well-formed
    /// (`isTraceparent`), with its `tracestate` unless that is longer than W3C asks a receiver to
    /// keep; else none (W3C: a malformed parent starts a new trace, and `tracestate` goes only
    /// with its `traceparent`).
    public static func usable(_ headers: [String: String]) -> [String: String] {
        guard let parent = headers["traceparent"], isTraceparent(parent[...]) else { return [:] }
        guard let state = headers["tracestate"], state.utf8.count <= longestTracestate,
              state.utf8.lazy.filter({ $0 == UInt8(ascii: ",") }).count < mostTracestateMembers else {
            return ["traceparent": parent]
        }
        return ["traceparent": parent, "tracestate": state]
    }

    /// Whether `text` is a `traceparent` of W3C's version 00 that a tracer continues:
    /// `00-<32 hex>-<16 hex>-<2 hex>`, lowercase, neither id all zeros.
    public static func isTraceparent(_ text: Substring) -> Bool {
        let parts = text.split(separator: "-", omittingEmptySubsequences: false)
        let lowerHex = { (part: Substring) in part.allSatisfy { ("0"..."9").contains($0) || ("a"..."f").contains($0) } }
        return parts.map(\.count) == [2, 32, 16, 2] && parts.allSatisfy(lowerHex) && parts[0] == "00"
            && parts[1].contains { $0 != "0" } && parts[2].contains { $0 != "0" }
    }

    /// `text` when it is a `traceparent` (`isTraceparent`); nil otherwise.
    public static func traceparent(_ text: String?) -> String? {
        text.flatMap { isTraceparent($0[...]) ? $0 : nil }
    }

    /// The context `headers` carry (as received: a parent for new spans), as `instrument` (the
    /// tracer) reads them; only what `usable` keeps. A `tracestate` the tracer cannot read does
    /// not lose the parent: W3C says to go on without it.
    public static func context(of headers: [String: String], via instrument: any Instrument) -> ServiceContext {
        let headers = usable(headers)
        guard !headers.isEmpty else { return .topLevel }
        var context = ServiceContext.topLevel
        instrument.extract(headers, into: &context, using: Extractor())
        if headers["tracestate"] != nil, of(context, via: instrument).isEmpty {
            instrument.extract(["traceparent": headers["traceparent"] ?? ""], into: &context, using: Extractor())
        }
        return context
    }

    struct Extractor: Instrumentation.Extractor {
        func extract(key: String, from carrier: [String: String]) -> String? { carrier[key] }
    }

    struct Injector: Instrumentation.Injector {
        func inject(_ value: String, forKey key: String, into carrier: inout [String: String]) { carrier[key] = value }
    }
}
