import Foundation
import PipelineKit
import Testing

@Suite struct JSONWriterTests {
    @Test func stringsAreEscapedAsJSON() throws {
        let text = "quote \" backslash \\ newline \n tab \t bell \u{7} nul \u{0} é 👍 </script>"
        let line = JSONWriter.quoted(text)
        #expect(line.contains(#"\u0007"#))
        #expect(try JSONDecoder().decode(String.self, from: Data(line.utf8)) == text)
    }

    @Test func valuesRoundTripWithSortedKeysAndCommas() throws {
        let value = JSONValue.object([
            "z": .array([.number(1), .number(-2.5), .bool(true), .null, .string("x"), .array([]), .object([:])]),
            "a": .object(["nested": .object(["deep": .string("\"")]), "b": .number(1e20)]),
            "m": .number(1_000_000),
        ])
        let text = value.encodedString()
        #expect(text == #"{"a":{"b":1e+20,"nested":{"deep":"\""}},"m":1000000,"z":[1,-2.5,true,null,"x",[],{}]}"#)
        #expect(try JSONValue(parsing: Array(text.utf8)) == value)
    }

    @Test func membersWithoutAValueAreLeftOut() {
        var writer = JSONWriter()
        writer.beginObject()
        writer.member("present", "yes")
        writer.member("absent", nil)
        writer.key("n")
        writer.number(.nan)
        writer.endObject()
        #expect(writer.text == #"{"present":"yes","n":null}"#)
    }

    @Test func parsingReportsWhyTextIsNotJSON() {
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: Array(#"{"internalId":"#.utf8)) }
        #expect(throws: JSONValue.ParseError.self) { try JSONValue(parsing: []) }
        #expect((try? JSONValue(parsing: Array("5".utf8))) == .number(5))
        #expect((try? JSONValue(parsing: Array(#"[false, 0, 1]"#.utf8))) == .array([.bool(false), .number(0), .number(1)]))
    }

    @Test func timestampsAreISO8601UTCWithMilliseconds() throws {
        #expect(UTCTimestamp.format(Date(timeIntervalSince1970: 1_796_000_000.25)) == "2026-11-30T00:53:20.250Z")
        #expect(UTCTimestamp.format(Date(timeIntervalSince1970: -0.5)) == "1969-12-31T23:59:59.500Z")
        let stamp = UTCTimestamp.now()
        let parsed = try Date(stamp, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))
        #expect(abs(parsed.timeIntervalSinceNow) < 5)
    }

    /// Dates from input (an AMQP timestamp, a webhook's) outside the years the format writes: the
    /// nearest end of them, not a trap (they trapped converting to Int, or writing a negative year).
    @Test(arguments: [(Double.nan, "1970-01-01T00:00:00.000Z"), (.infinity, "9999-12-31T23:59:59.999Z"), (1e300, "9999-12-31T23:59:59.999Z"),
                      (Double(UInt64.max), "9999-12-31T23:59:59.999Z"), (-.infinity, "0001-01-01T00:00:00.000Z"), (-1e13, "0001-01-01T00:00:00.000Z"),
                      (253_402_300_799, "9999-12-31T23:59:59.000Z"), (-62_135_596_800, "0001-01-01T00:00:00.000Z")])
    func timestampsOutsideTheFormatsYearsAreItsEnds(_ seconds: Double, _ text: String) {
        #expect(UTCTimestamp.format(Date(timeIntervalSince1970: seconds)) == text)
    }
}
