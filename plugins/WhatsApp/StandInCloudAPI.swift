import Foundation
import Logging
import PipelineKit
import Synchronization

/// An in-memory Cloud API for `outbound-worker test`: records each request and answers
/// as scripted (success with a wamid, an HTTP status with an error code, a delay). No network.
public final class StandInCloudAPI: CloudAPISender {
    /// One scripted answer.
    public struct Answer: Sendable, Equatable {
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

    /// One request as received, with the sender and token it went out with and when (by the clock).
    public struct Received: Sendable {
        public var request: PreparedRequest
        public var sender: String
        public var token: String?
        public var at: Date
    }

    public let configuration: CloudAPIConfiguration
    public let slotStore: (any SlotStore)?
    private let clock: any WallClock
    private let log: StandInLog

    /// A stand-in with the settings of the resource it replaces; it shares `answers` and `received` through `log`.
    public init(configuration: CloudAPIConfiguration, slotStore: (any SlotStore)?, clock: any WallClock, log: StandInLog) {
        self.configuration = configuration
        self.slotStore = slotStore
        self.clock = clock
        self.log = log
    }

    public func send(_ request: PreparedRequest, from sender: String, logger: Logger) async throws(CloudAPIFailure) -> String? {
        let (answer, number) = log.take(Received(request: request, sender: sender, token: configuration.token(for: sender), at: clock.now()))
        if let delay = answer.delay {
            guard delay < configuration.timeout else {
                throw CloudAPIFailure(.transient, status: nil, code: nil, reason: "timeout: no answer within \(DurationParser.format(configuration.timeout))")
            }
            if let manual = clock as? ManualWallClock { manual.advance(by: delay) } else { try? await Task.sleep(for: delay) }
        }
        if (200..<300).contains(answer.status) {
            return try CloudAPIClient.interpret(status: answer.status, body: Data(#"{"messaging_product":"whatsapp","messages":[{"id":"wamid.test.\#(number)"}]}"#.utf8))
        }
        let error = JSONValue.object(["error": .object([
            "message": .string(answer.errorMessage ?? "scripted error"),
            "code": answer.errorCode.map { .number(JSONNumber($0)) } ?? .null,
        ])])
        return try CloudAPIClient.interpret(status: answer.status, body: Data(error.encodedBytes()))
    }

    public func health() async -> HealthStatus { .up }
    public func shutdown() async {}
}

/// What stand-ins received and will answer, shared by every stand-in a test builds (a reload builds a new one).
public final class StandInLog: Sendable {
    private struct State {
        var answers: [StandInCloudAPI.Answer] = []
        var received: [StandInCloudAPI.Received] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The answers to the next requests, in order; every request after them succeeds.
    public func script(_ answers: [StandInCloudAPI.Answer]) {
        state.withLock { $0.answers = answers }
    }

    /// Every request received so far.
    public var received: [StandInCloudAPI.Received] { state.withLock { $0.received } }

    func take(_ received: StandInCloudAPI.Received) -> (StandInCloudAPI.Answer, Int) {
        state.withLock { state in
            state.received.append(received)
            let answer = state.answers.isEmpty ? StandInCloudAPI.Answer() : state.answers.removeFirst()
            return (answer, state.received.count)
        }
    }
}
