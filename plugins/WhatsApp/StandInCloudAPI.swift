import Foundation
import Logging
import PipelineKit
import Synchronization

/// An in-memory Cloud API for `outbound-worker test`: records each request and answers
/// as scripted (success with a wamid, an HTTP status with an error code, a delay). No network.
public final class StandInCloudAPI: CloudAPISender {
    /// The next answers to give.
    public struct Script: Sendable, Equatable {
        public var status: Int
        public var errorCode: Int?
        public var errorMessage: String?
        public var delay: Duration?

        public init(status: Int = 200, errorCode: Int? = nil, errorMessage: String? = nil, delay: Duration? = nil) {
            self.status = status
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.delay = delay
        }
    }

    private struct State {
        var script = Script()
        var requests: [PreparedRequest] = []
        var counter = 0
        var timeout = Duration.seconds(10)
    }

    private let state = Mutex(State())

    public init() {}

    /// Sets the answers for the following requests.
    public func setScript(_ script: Script) {
        state.withLock { $0.script = script }
    }

    /// The request timeout of the resource it stands in for: a scripted delay beyond it is a timeout.
    public func setTimeout(_ timeout: Duration) {
        state.withLock { $0.timeout = timeout }
    }

    /// Every request received so far.
    public var requests: [PreparedRequest] {
        state.withLock { $0.requests }
    }

    public func send(_ request: PreparedRequest, attempt: Int, logger: Logger) async throws(StepFailure) -> String {
        let (script, number, timeout) = state.withLock { state in
            state.requests.append(request)
            state.counter += 1
            return (state.script, state.counter, state.timeout)
        }
        if let delay = script.delay {
            guard delay < timeout else { throw StepFailure(.transient, "timeout: no answer within \(DurationParser.format(timeout))") }
            try? await Task.sleep(for: delay)
        }
        var body = Data()
        if (200..<300).contains(script.status) {
            body = Data(#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.test.\#(number)"}]}"#.utf8)
        } else {
            let error = JSONValue.object(["error": .object([
                "message": .string(script.errorMessage ?? "scripted error"),
                "code": script.errorCode.map { .number(Double($0)) } ?? .null,
            ])])
            body = Data(error.encodedBytes())
        }
        return try CloudAPIClient.interpret(status: script.status, body: body, attempt: attempt)
    }

    public func health() async -> HealthStatus { .up }
    public func shutdown() async {}
}
