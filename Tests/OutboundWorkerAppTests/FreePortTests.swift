import Testing
import TestSupport

/// The ports tests give their workers: a webhook and a health server drawn for one worker were the
/// same port once in about ten thousand, and the worker stopped at start ("Address already in use").
@Suite struct FreePortTests {
    @Test func noPortIsHandedOutTwice() {
        let ports = (0..<1_000).map { _ in freePort() }
        #expect(Set(ports).count == ports.count, "\(ports.count - Set(ports).count) handed out again")
    }
}
