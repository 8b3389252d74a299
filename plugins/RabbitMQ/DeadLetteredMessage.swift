import AMQPClient
import Foundation
import PipelineKit

/// What a message in `{queue}.dead` says about itself: the headers the source wrote when it
/// dead-lettered it (or the broker's `x-death`, for a quorum queue's delivery limit).
public struct DeadLetteredMessage: Sendable {
    public var message: AMQPDelivery
    /// `x-error-step`: the step that gave up on it.
    public var step: String?
    /// `x-error`: why.
    public var error: String?
    /// `x-error-code`: the Cloud API's code, when it gave one.
    public var code: Int?
    /// `x-dead-lettered-at`, else the time of the broker's latest `x-death`.
    public var deadLetteredAt: Date?
    /// The body's top-level `internalId`, when the body is JSON and has one.
    public var internalId: String?
    /// `x-lane`: the lane it came from, when the source has lanes.
    public var lane: String?
    /// The queue the broker dead-lettered it from itself (a quorum queue's delivery limit), when it did.
    public var brokerDeadLetteredFrom: String?

    /// The header naming a letter's lane.
    static let laneHeader = "x-lane"

    public init(_ message: AMQPDelivery) {
        self.message = message
        let headers = message.properties.headers
        step = headers["x-error-step"]?.stringValue
        error = headers["x-error"]?.stringValue
        code = headers["x-error-code"]?.intValue
        deadLetteredAt = headers["x-dead-lettered-at"].flatMap(HeaderTime.date) ?? Self.latestDeath(headers)
        internalId = Self.internalId(in: message.body)
        lane = headers[Self.laneHeader]?.stringValue
        brokerDeadLetteredFrom = headers["x-first-death-queue"]?.stringValue
    }

    /// The queue a replay puts it back into: its lane's, else the lane of the queue the broker
    /// dead-lettered it from (a quorum queue's delivery limit writes no `x-lane`), else
    /// `topology.queue` (no lane, or a lane that is gone).
    public func replayQueue(in topology: QueueTopology, lanes: [RabbitMQSettings.LaneQueue]) -> String {
        if let lane, let queue = RabbitMQSettings.queue(ofLane: lane, in: lanes) { return queue }
        if let queue = brokerDeadLetteredFrom, let lane = topology.laneQueues.first(where: { queue == $0 || queue.hasPrefix("\($0).retry.") }) {
            return lane
        }
        return topology.queue
    }

    /// Headers a replayed copy does not keep: its past attempts, errors and the state steps carried.
    static let clearedOnReplay = ["x-attempts", "x-error", "x-error-step", "x-error-code", "x-dead-lettered-at", "x-death", laneHeader,
                                  "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason", "x-first-received"]

    /// The copy `replay` publishes to the source queue: attempts reset, the error kept as
    /// `x-replayed-from-error`, `user_id` kept as `x-original-user-id`, and `x-replayed-at`, from which the source counts its age. Steps
    /// learn that an operator replayed it (`Message.carried[ReplayNote.carriedKey]`): a send left
    /// in doubt is then sent again (SPEC 13).
    public func replayProperties(at now: Date) -> AMQPProperties {
        var properties = message.properties
        for name in Self.clearedOnReplay { properties.headers[name] = nil }
        properties.headers.entries.removeAll { $0.key.hasPrefix(RabbitMQSource.carriedPrefix) }
        if let error { properties.headers["x-replayed-from-error"] = .string(error) }
        properties.headers["x-replayed-at"] = .string(UTCTimestamp.format(now))
        properties.headers[RabbitMQSource.carriedPrefix + ReplayNote.carriedKey] = .string(UTCTimestamp.format(now))
        properties.expiration = nil
        // A letter the broker dead-lettered itself (a quorum queue's delivery limit) keeps its publisher's
        // `user_id`: replayed as another user, the broker refused it (406) and every replay stopped there.
        RabbitMQSource.keepUserIDAsHeader(&properties)
        return properties
    }

    /// One line for an operator: id, step, code, when and why.
    public var summary: String {
        var parts = [internalId ?? "(no internalId)"]
        parts.append("step=\(step ?? "-")")
        if let code { parts.append("code=\(code)") }
        if let lane { parts.append("lane=\(lane)") }
        if let deadLetteredAt { parts.append("at=\(UTCTimestamp.format(deadLetteredAt))") }
        if let error { parts.append("error=\"\(error.prefix(utf8Bytes: 120))\"") }
        return parts.joined(separator: " ")
    }

    private static func latestDeath(_ headers: AMQPTable) -> Date? {
        guard case .array(let deaths)? = headers["x-death"], case .table(let latest)? = deaths.first,
              case .timestamp(let seconds)? = latest["time"] else { return nil }
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    private static func internalId(in body: [UInt8]) -> String? {
        guard let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any] else { return nil }
        return object["internalId"] as? String
    }
}

/// Which dead letters `replay` moves: every given filter must match (an empty one matches all).
public struct DeadLetterFilter: Sendable {
    public var steps: Set<String>
    public var codes: Set<Int>
    /// Only letters dead-lettered at or after this time.
    public var since: Date?

    public init(steps: Set<String> = [], codes: Set<Int> = [], since: Date? = nil) {
        self.steps = steps
        self.codes = codes
        self.since = since
    }

    public func matches(_ letter: DeadLetteredMessage) -> Bool {
        if !steps.isEmpty, !(letter.step.map(steps.contains) ?? false) { return false }
        if !codes.isEmpty, !(letter.code.map(codes.contains) ?? false) { return false }
        if let since, !(letter.deadLetteredAt.map { $0 >= since } ?? false) { return false }
        return true
    }
}
