import Foundation
import PipelineKit
import RedisPlugin

/// The messaging limit's window in memory, with the Redis script's semantics.
extension MemoryStore: MessagingLimitStore {
    public func take(_ key: String, recipient: String, limit: Int, window: Duration) async throws(StoreUnavailable) -> MessagingLimitTake {
        try atomically { entries, now in
            let ms = now.epochMilliseconds()
            var scores = Self.inWindow(entries[key]?.scores, at: ms, window)
            defer { entries[key] = scores.isEmpty ? nil : Entry(scores: scores) }
            switch Self.look(scores, recipient, limit: limit, at: ms, window: window) {
            case .full(let until):
                return .full(until: until)
            case .counted:
                scores[recipient] = Double(ms)
                return .counted
            case .room:
                scores[recipient] = Double(ms)
                return .taken(at: ms)
            }
        }
    }

    public func look(_ key: String, recipient: String, limit: Int, window: Duration) async throws(StoreUnavailable) -> MessagingLimitLook {
        try atomically { entries, now in
            let ms = now.epochMilliseconds()
            return Self.look(Self.inWindow(entries[key]?.scores, at: ms, window), recipient, limit: limit, at: ms, window: window)
        }
    }

    /// The recipients of a window still in it at `ms`.
    private static func inWindow(_ scores: [String: Double]?, at ms: Int64, _ window: Duration) -> [String: Double] {
        (scores ?? [:]).filter { $0.value > Double(ms - window.milliseconds) }
    }

    /// What `scores` (the window now) hold for `recipient`. (An empty window is full only under a
    /// limit of 0: until a window from now.)
    private static func look(_ scores: [String: Double], _ recipient: String, limit: Int, at ms: Int64, window: Duration) -> MessagingLimitLook {
        if scores[recipient] != nil { return .counted }
        guard scores.count >= limit else { return .room }
        return .full(until: Date(epochMilliseconds: (scores.values.min() ?? Double(ms)) + Double(window.milliseconds)))
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
