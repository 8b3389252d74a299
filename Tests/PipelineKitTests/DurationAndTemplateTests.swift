import PipelineKit
import Testing

@Suite struct DurationAndTemplateTests {
    @Test(arguments: [("250ms", 250), ("30s", 30_000), ("5m", 300_000), ("24h", 86_400_000), ("86400", 86_400_000), ("0.5", 500), (" 2s ", 2000)])
    func parsesDurations(text: String, milliseconds: Int64) {
        #expect(DurationParser.parse(text)?.milliseconds == milliseconds)
    }

    @Test(arguments: ["", "s", "5x", "-1s", "1d", "ms5", "abc", "inf", "nan", "1e17", "1e300s", "876601h"])
    func rejectsBadDurations(text: String) {
        #expect(DurationParser.parse(text) == nil)
    }

    /// 100 years is the longest (`1e17`, as `IDEMPOTENCY_TTL_SECONDS`, trapped converting to milliseconds).
    @Test func aHundredYearsIsTheLongestDuration() {
        #expect(DurationParser.parse("876600h")?.milliseconds == 3_155_760_000_000)
        #expect(DurationParser.parse("3155760000")?.milliseconds == 3_155_760_000_000)
        #expect(DurationParser.parse("3155760001") == nil)
    }

    @Test func formatsDurations() {
        #expect(DurationParser.format(.milliseconds(250)) == "250ms")
        #expect(DurationParser.format(.seconds(120)) == "2m")
        #expect(DurationParser.format(.seconds(86_400)) == "24h")
        #expect(DurationParser.format(.seconds(90)) == "90s")
    }

    @Test func keyTemplatesRender() throws {
        let template = try KeyTemplate("idempotency:outbound:{internalId}")
        #expect(template.fields == ["internalId"])
        #expect(template.render { $0 == "internalId" ? "a1" : nil } == "idempotency:outbound:a1")
        #expect(template.render { _ in nil } == nil)
    }

    @Test(arguments: ["a:{", "a:}", "a:{}", "{in valid}"])
    func rejectsMalformedTemplates(pattern: String) {
        #expect(throws: KeyTemplateError.self) { try KeyTemplate(pattern) }
    }
}
