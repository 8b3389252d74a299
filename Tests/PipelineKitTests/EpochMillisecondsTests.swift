import Foundation
import PipelineKit
import Testing

/// Times as milliseconds since 1970, read from input (headers, store values) and written back.
@Suite struct EpochMillisecondsTests {
    @Test func aTimeWrittenReadsBack() throws {
        let date = Date(timeIntervalSince1970: 1_765_000_000.1234)
        #expect(date.epochMilliseconds() == 1_765_000_000_123)
        #expect(date.epochMilliseconds(.up) == 1_765_000_000_124)
        #expect(date.epochMilliseconds(.toNearestOrAwayFromZero) == 1_765_000_000_123)
        let back = try #require(Date(epochMillisecondsText: String(date.epochMilliseconds())))
        #expect(back.epochMilliseconds() == 1_765_000_000_123)
        #expect(Date(epochMillisecondsText: "1765000000123.5")?.epochMilliseconds() == 1_765_000_000_123)
    }

    /// Text that names no time from 1970 to 9999 is none: before, `1e300` or `inf` in a carried header
    /// became a date that trapped where it was turned into milliseconds (the worker ended, and again
    /// for each redelivery of the message).
    @Test(arguments: ["1e300", "inf", "-inf", "nan", "-1", "253402300800000", "", "12:30"])
    func textThatIsNoTimeInRangeIsNone(text: String) {
        #expect(Date(epochMillisecondsText: text) == nil)
    }

    @Test func theRangesEndsRead() {
        #expect(Date(epochMillisecondsText: "0") == Date(timeIntervalSince1970: 0))
        #expect(Date(epochMillisecondsText: "253402300799999")?.epochMilliseconds() == 253_402_300_799_999)
    }

    /// Any date converts without a trap: beyond 64 bits, the nearest end.
    @Test func aDateBeyondSixtyFourBitsGivesTheNearestEnd() {
        #expect(Date(timeIntervalSince1970: 1e300).epochMilliseconds() == .max)
        #expect(Date(timeIntervalSince1970: -1e300).epochMilliseconds() == .min)
        #expect(Date(timeIntervalSince1970: .infinity).epochMilliseconds(.up) == .max)
        #expect(Date(timeIntervalSince1970: .nan).epochMilliseconds() == 0)
    }
}
