import Foundation

/// The JSON value of an idempotency key: `processing` while a worker owns it, `completed` once sent.
public struct KeyState: Codable, Sendable, Equatable {
    public var status: String
    public var owner: String?
    public var since: String?
    public var wamid: String?
    public var completed_at: String?

    public static func processing(owner: String, since: Date) -> KeyState {
        KeyState(status: "processing", owner: owner, since: timestamp(since))
    }

    public static func completed(wamid: String, at: Date) -> KeyState {
        KeyState(status: "completed", wamid: wamid, completed_at: timestamp(at))
    }

    var isCompleted: Bool { status == "completed" }

    /// When processing started, if readable.
    var sinceDate: Date? {
        since.flatMap { try? Date($0, strategy: .iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted)) }
            ?? since.flatMap { try? Date($0, strategy: .iso8601) }
    }

    public func encoded() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return (try? String(decoding: encoder.encode(self), as: UTF8.self)) ?? #"{"status":"\#(status)"}"#
    }

    static func decode(_ text: String) -> KeyState? {
        try? JSONDecoder().decode(KeyState.self, from: Data(text.utf8))
    }

    static func timestamp(_ date: Date) -> String {
        date.formatted(.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: true).timeSeparator(.colon).timeZone(separator: .omitted))
    }
}
