import Foundation
import Logging
import PipelineKit
import Synchronization

/// An in-memory Cloud API for `outbound-worker test`: records each request and answers
/// as scripted (success with a wamid, an HTTP status with an error code, a delay). No network.
public final class StandInCloudAPI: CloudAPISender {
    /// An answer that never comes (SPEC 13): after Meta accepted the request, or before.
    public enum LostAnswer: String, Sendable, Equatable {
        case accepted
        case notAccepted = "not_accepted"
    }

    /// One scripted answer.
    public struct Answer: Sendable, Equatable {
        public var status: Int
        public var errorCode: Int?
        public var errorMessage: String?
        public var delay: Duration?
        /// The answer is lost: the client waits its whole timeout, then the send is in doubt.
        public var lost: LostAnswer?
        /// A delivery status of the request reaches the statuses pipeline this long after it (accepted requests only).
        public var statusAfter: Duration?

        public init(status: Int = 200, errorCode: Int? = nil, errorMessage: String? = nil, delay: Duration? = nil, lost: LostAnswer? = nil, statusAfter: Duration? = nil) {
            self.status = status
            self.errorCode = errorCode
            self.errorMessage = errorMessage
            self.delay = delay
            self.lost = lost
            self.statusAfter = statusAfter
        }
    }

    /// A delivery status on its way to the statuses pipeline: at `at`, `wamid` for the message `internalID`.
    public struct ScheduledStatus: Sendable, Equatable {
        public var at: Date
        public var internalID: String
        public var wamid: String
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
        let sentAt = clock.now()
        let (answer, number) = log.take(Received(request: request, sender: sender, token: configuration.token(for: sender), at: sentAt))
        let accepted = answer.lost != .notAccepted && (200..<300).contains(answer.status)
        if accepted, let after = answer.statusAfter, let internalID = Self.internalID(of: request) {
            log.schedule(ScheduledStatus(at: sentAt.addingTimeInterval(after.secondsDouble), internalID: internalID, wamid: "wamid.test.\(number)"))
        }
        if answer.lost != nil || answer.delay.map({ $0 >= configuration.timeout }) == true {
            // The request was written and no answer came in time (as the real client, SPEC 13: in doubt).
            // The client waits out its timeout; Meta's status may come meanwhile.
            try? await clock.sleep(until: sentAt.addingTimeInterval(configuration.timeout.secondsDouble))
            throw CloudAPIFailure(.inDoubt, status: nil, code: nil, reason: "in doubt: the request was sent, then no answer within \(DurationParser.format(configuration.timeout)) (timeout)")
        }
        if let delay = answer.delay {
            try? await clock.sleep(until: sentAt.addingTimeInterval(delay.secondsDouble))
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

    /// The `biz_opaque_callback_data` a request carries (the message's internalId).
    private static func internalID(of request: PreparedRequest) -> String? {
        (try? JSONValue(parsing: request.body))?["biz_opaque_callback_data"]?.stringValue
    }

    public func health() async -> HealthStatus { .up }
    public func shutdown() async {}
}

/// What stand-ins received and will answer, shared by every stand-in a test builds (a reload builds a new one).
public final class StandInLog: Sendable {
    private struct State {
        var answers: [StandInCloudAPI.Answer] = []
        var received: [StandInCloudAPI.Received] = []
        var statuses: [StandInCloudAPI.ScheduledStatus] = []
    }

    private let state = Mutex(State())

    public init() {}

    /// The answers to the next requests, in order; every request after them succeeds.
    public func script(_ answers: [StandInCloudAPI.Answer]) {
        state.withLock { $0.answers = answers }
    }

    /// Every request received so far.
    public var received: [StandInCloudAPI.Received] { state.withLock { $0.received } }

    func schedule(_ status: StandInCloudAPI.ScheduledStatus) {
        state.withLock { $0.statuses.append(status) }
    }

    /// The statuses due by `now`, taken out (the test runner hands them to the statuses pipeline's settlement).
    public func statuses(dueBy now: Date) -> [StandInCloudAPI.ScheduledStatus] {
        state.withLock { state in
            let due = state.statuses.filter { $0.at <= now }
            state.statuses.removeAll { $0.at <= now }
            return due
        }
    }

    func take(_ received: StandInCloudAPI.Received) -> (StandInCloudAPI.Answer, Int) {
        state.withLock { state in
            state.received.append(received)
            let answer = state.answers.isEmpty ? StandInCloudAPI.Answer() : state.answers.removeFirst()
            return (answer, state.received.count)
        }
    }
}
