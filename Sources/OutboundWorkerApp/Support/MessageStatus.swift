import Foundation
import IdempotencyPlugin
import PipelineKit
import RabbitMQPlugin

/// One message's status as `status` prints it (and as its JSON).
struct MessageStatus: Encodable {
    struct DeadLetters: Encodable {
        struct Copy: Encodable {
            var step: String?
            var code: Int?
            var error: String?
            var dead_lettered_at: String?
            /// The lane it came from (`x-lane`), when the source has lanes.
            var lane: String?
        }

        var queue: String
        /// Nil when the queue was not read.
        var count: Int?
        var copies: [Copy] = []
        var note: String?
    }

    var internalId: String
    var key: String?
    /// absent, processing, in_doubt, completed, unreadable or unavailable.
    var state = "unknown"
    var owner: String?
    var since: String?
    var age_seconds: Int?
    /// in_doubt: the delivery whose send went in doubt.
    var attempt: Int?
    var wamid: String?
    var completed_at: String?
    var ttl_seconds: Int?
    var detail: String?
    var deadLetters: DeadLetters

    init(internalId: String, deadQueue: String) {
        self.internalId = internalId
        deadLetters = DeadLetters(queue: deadQueue)
    }

    enum CodingKeys: String, CodingKey {
        case internalId, key, state, owner, since, age_seconds, attempt, wamid, completed_at, ttl_seconds, detail
        case deadLetters = "dead_letters"
    }

    mutating func record(_ lookup: KeyLookup) {
        key = lookup.key
        ttl_seconds = lookup.ttl.map { Int($0.components.seconds) }
        switch lookup.state {
        case .absent: state = "absent"
        case .processing(let owner, let since, let startedAt):
            state = "processing"
            self.owner = owner
            self.since = since
            age_seconds = startedAt.map { Int(Date().timeIntervalSince($0)) }
        case .inDoubt(let owner, let since, let startedAt, let attempt):
            state = "in_doubt"
            self.owner = owner
            self.since = since
            self.attempt = attempt
            age_seconds = startedAt.map { Int(Date().timeIntervalSince($0)) }
        case .completed(let wamid, let at):
            state = "completed"
            self.wamid = wamid
            completed_at = at
        case .unreadable(let value):
            state = "unreadable"
            detail = String(value.prefix(utf8Bytes: 200))
        case .unavailable(let reason):
            state = "unavailable"
            detail = reason
        }
    }

    mutating func record(_ letters: [DeadLetteredMessage]) {
        deadLetters.count = letters.count
        deadLetters.copies = letters.map { DeadLetters.Copy(step: $0.step, code: $0.code, error: $0.error, dead_lettered_at: $0.deadLetteredAt.map(UTCTimestamp.format), lane: $0.lane) }
    }

    var text: String {
        var lines = [internalId]
        let keyName = key.map { "\($0): " } ?? ""
        switch state {
        case "absent": lines.append("  key   \(keyName)absent (never seen within its ttl, or released after a failure)")
        case "processing": lines.append("  key   \(keyName)processing by \(owner ?? "?") since \(since ?? "?")\(age_seconds.map { " (\($0)s ago)" } ?? "")")
        case "in_doubt":
            lines.append("  key   \(keyName)in_doubt since \(since ?? "?")\(age_seconds.map { " (\($0)s ago)" } ?? ""): sent by \(owner ?? "?") (attempt \(attempt.map(String.init) ?? "?")), its answer lost; \(deadLetters.copies.contains { $0.error?.hasPrefix("in doubt") == true } ? "dead-lettered in doubt (on_in_doubt: dead_letter; `replay` sends it again)" : "waiting for a delivery status or the window")")
        case "completed": lines.append("  key   \(keyName)completed at \(completed_at ?? "?"), wamid \(wamid ?? "unknown yet (the first status brings it)")")
        case "unknown": break
        default: lines.append("  key   \(keyName)\(state): \(detail ?? "")")
        }
        if let ttl_seconds { lines.append("  ttl   \(DurationParser.format(.seconds(ttl_seconds)))") }
        if let count = deadLetters.count {
            lines.append("  dead  \(count) in \(deadLetters.queue)")
            for copy in deadLetters.copies {
                lines.append("        step=\(copy.step ?? "-")\(copy.code.map { " code=\($0)" } ?? "")\(copy.lane.map { " lane=\($0)" } ?? "") at=\(copy.dead_lettered_at ?? "?") \(copy.error.map { "\"\($0.prefix(utf8Bytes: 120))\"" } ?? "")")
            }
        } else if let note = deadLetters.note {
            lines.append("  dead  \(deadLetters.queue): \(note)")
        }
        return lines.joined(separator: "\n")
    }
}
