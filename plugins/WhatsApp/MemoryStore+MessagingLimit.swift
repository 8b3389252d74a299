import Foundation
import PipelineKit
import RedisPlugin

/// The messaging limit's window in memory, with the Redis script's semantics.
extension MemoryStore: MessagingLimitStore {
    public func take(_ key: String, recipient: String, limit: Int, window: Duration) async throws(StoreUnavailable) -> MessagingLimitTake {
        try atomically { entries, now in
            let ms = now.epochMilliseconds()
            var scores = (entries[key]?.scores ?? [:]).filter { $0.value > Double(ms - window.milliseconds) }
            defer { entries[key] = scores.isEmpty ? nil : Entry(scores: scores) }
            if scores[recipient] != nil {
                scores[recipient] = Double(ms)
                return .counted
            }
            if scores.count >= limit {
                // (An empty window is full only under a limit of 0: until a window from now.)
                return .full(until: Date(epochMilliseconds: (scores.values.min() ?? Double(ms)) + Double(window.milliseconds)))
            }
            scores[recipient] = Double(ms)
            return .taken(at: ms)
        }
    }

    public func look(_ key: String, recipient: String, limit: Int, window: Duration) async throws(StoreUnavailable) -> MessagingLimitLook {
        try atomically { entries, now in
            let ms = Double(now.epochMilliseconds())
            let scores = (entries[key]?.scores ?? [:]).filter { $0.value > ms - Double(window.milliseconds) }
            if scores[recipient] != nil { return .counted }
            guard scores.count >= limit else { return .room }
            return .full(until: Date(epochMilliseconds: (scores.values.min() ?? ms) + Double(window.milliseconds)))
        }
    }

    public func giveBack(_ key: String, recipient: String, takenAt at: Int64) async throws(StoreUnavailable) {
        try atomically { entries, _ in
            guard var scores = entries[key]?.scores, scores[recipient] == Double(at) else { return }
            scores[recipient] = nil
            entries[key] = scores.isEmpty ? nil : Entry(scores: scores)
        }
    }

    public func counted(_ key: String, window: Duration) async throws(StoreUnavailable) -> Int {
        try atomically { entries, now in
            let since = now.timeIntervalSince1970 * 1000 - Double(window.milliseconds)
            return (entries[key]?.scores ?? [:]).values.filter { $0 > since }.count
        }
    }
}
