import PipelineKit
import Testing
import TestSupport
import WhatsAppPlugin

/// SPEC 10, tenants: a sender-side failure pauses only the senders using that token, and `/health`
/// lists each paused sender.
struct PauseScopeTests {
    func configuration(_ yaml: String) throws -> CloudAPIConfiguration {
        CloudAPIConfiguration(settings: try settings(yaml, schema: CloudAPISettings.schema))
    }

    /// Two senders given the same token pause together: the second no longer sends until it fails
    /// itself (another request refused, another outage counted).
    @Test func sendersOfOneTokenShareItsPause() throws {
        let tenants = try configuration(#"access_tokens: { "111": token-a, "222": token-a, "333": token-b }"# + "\n")
        let first = tenants.pauseScopes(for: "111").token, second = tenants.pauseScopes(for: "222").token
        #expect(first == second, "one scope for one token")
        #expect(first.covers == ["111", "222"], "named for /health")
        #expect(!first.coversAll)
        let other = tenants.pauseScopes(for: "333").token
        #expect(other.key != first.key && other.covers == ["333"])
        #expect(tenants.pauseScopes(for: "444").token.key == "token:default", "a sender without a token of its own: the shared one's")
    }

    @Test func aSenderRejectedItselfPausesAlone() throws {
        let single = try configuration("access_token: t\nphone_number_id: \"100\"\n")
        #expect(single.pauseScopes(for: "100").token.coversAll, "one token for all: everything pauses")
        #expect(single.pauseScopes(for: "100").sender == PauseScope(key: "sender:100", coversAll: false, covers: ["100"]))
        #expect(single.pauseScopes(for: "555").sender.covers == ["555"], "a sender only messages name")
    }
}
