import PipelineKit
import Testing

/// What a sampled-out message's events carry on: the headers it came with, only if well-formed.
struct TraceHeadersTests {
    @Test func onlyAWellFormedTraceparentGoesOnWithItsTracestate() {
        let valid = ["traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "tracestate": "vendor=x"]
        #expect(TraceHeaders.wellFormed(valid) == valid)
        for broken in ["00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-00", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
                       "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-00", "garbage", ""] {
            #expect(TraceHeaders.wellFormed(["traceparent": broken, "tracestate": "vendor=x"]).isEmpty, "\(broken)")
        }
        #expect(TraceHeaders.wellFormed(["tracestate": "vendor=x"]).isEmpty, "no tracestate without its traceparent")
    }
}
