import PipelineKit
import Testing

/// `firstDifference`, which `outbound-worker test` uses to compare what was sent with what a case
/// expects: numbers by value, since the expectation comes from YAML and the request keeps the
/// message's text.
@Suite struct JSONValueComparisonTests {
    @Test("numbers written differently are the same value", arguments: [("2.50", "2.5"), ("1e2", "100"), ("1.0", "1"), ("-0", "0"), ("-0.0", "0"), ("9007199254740993", "9007199254740993")])
    func sameValue(_ sent: String, _ expected: String) throws {
        let actual = try JSONValue(parsing: Array(#"{"amount":\#(sent)}"#.utf8))
        #expect(actual.firstDifference(from: .object(["amount": .number(JSONNumber(text: expected))])) == nil)
    }

    @Test("different numbers differ, integers digit for digit beyond 2^53", arguments: [("9007199254740993", "9007199254740992"), ("2.5", "2.51"), ("100", "1e3"), ("12345678901234567890123", "12345678901234567890124")])
    func differentValues(_ sent: String, _ expected: String) throws {
        let actual = try JSONValue(parsing: Array(#"{"amount":\#(sent)}"#.utf8))
        let difference = actual.firstDifference(from: .object(["amount": .number(JSONNumber(text: expected))]))
        #expect(difference?.path == "amount")
    }
}
