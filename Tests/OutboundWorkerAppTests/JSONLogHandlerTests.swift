import Foundation
@testable import OutboundWorkerApp
import Testing

@Suite struct JSONLogHandlerTests {
    @Test func stringsAreEscapedAsJSON() throws {
        var line = ""
        JSONLogHandler.appendString("quote \" backslash \\ newline \n tab \t bell \u{7} é 👍", to: &line)
        let decoded = try JSONDecoder().decode(String.self, from: Data(line.utf8))
        #expect(decoded == "quote \" backslash \\ newline \n tab \t bell \u{7} é 👍")
    }

    @Test func timestampsAreISO8601UTC() throws {
        let stamp = JSONLogHandler.timestamp()
        #expect(stamp.count == 24)
        #expect(stamp.hasSuffix("Z"))
        let parsed = try Date(stamp, strategy: .iso8601.year().month().day().time(includingFractionalSeconds: true))
        #expect(abs(parsed.timeIntervalSinceNow) < 5)
    }
}
