import PipelineKit
import Testing

/// What a message goes on with of the trace headers it came with: a `traceparent` a tracer
/// continues, with its `tracestate` when that is within W3C's bounds.
struct TraceHeadersTests {
    static let parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"

    @Test func onlyAWellFormedTraceparentGoesOnWithItsTracestate() {
        let valid = ["traceparent": Self.parent, "tracestate": "vendor=x"]
        #expect(TraceHeaders.usable(valid) == valid)
        for broken in ["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                       "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-00", "garbage", "",
                       "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
                       "00-00000000000000000000000000000000-00f067aa0ba902b7-01", "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"] {
            #expect(TraceHeaders.usable(["traceparent": broken, "tracestate": "vendor=x"]).isEmpty, "\(broken)")
        }
        #expect(TraceHeaders.usable(["tracestate": "vendor=x"]).isEmpty, "no tracestate without its traceparent")
    }

    @Test func aTracestateBeyondW3CsBoundsIsDroppedAndItsTraceparentKept() {
        let thirtyTwo = (1...32).map { "v\($0)=x" }.joined(separator: ",")
        #expect(TraceHeaders.usable(["traceparent": Self.parent, "tracestate": thirtyTwo])["tracestate"] == thirtyTwo)
        let longest = "v=" + String(repeating: "x", count: TraceHeaders.longestTracestate - 2)
        #expect(TraceHeaders.usable(["traceparent": Self.parent, "tracestate": longest])["tracestate"] == longest)
        for beyond in [thirtyTwo + ",v33=x", longest + "x"] {
            #expect(TraceHeaders.usable(["traceparent": Self.parent, "tracestate": beyond]) == ["traceparent": Self.parent])
        }
    }
}
