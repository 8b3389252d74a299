/// What to do when a step fails (`on_error`).
public enum ErrorPolicy: String, Sendable, CaseIterable {
    /// Publish to `{queue}.dead` at once.
    case deadLetter = "dead_letter"
    /// Transient failures are retried per the source's retry policy, then dead-lettered;
    /// permanent ones are dead-lettered at once.
    case retry
    /// Acknowledge and log.
    case drop
}

/// What to do when a step's resource is down or too slow (`degradation`).
public enum DegradationPolicy: String, Sendable, CaseIterable {
    /// Log, count, and continue as if the step passed.
    case failOpen = "fail_open"
    /// Keep the message for later without using up an attempt.
    case failClosed = "fail_closed"
}

/// When and how often a failed message is tried again.
public struct RetryPolicy: Sendable, Hashable {
    /// Deliveries in all, the first included.
    public var maxAttempts: Int
    /// Wait before attempt 2, 3, …; the last repeats.
    public var backoff: [Duration]
    /// Up to this fraction of the delay is added at random, to spread retries.
    public var jitter: Double

    public init(maxAttempts: Int = Self.maxAttemptsSetting.defaultValue, backoff: [Duration] = Self.backoffSetting.defaultValue, jitter: Double = 0.2) {
        self.maxAttempts = max(1, maxAttempts)
        self.backoff = backoff.isEmpty ? [.seconds(1)] : backoff
        self.jitter = jitter
    }

    public static let maxAttemptsSetting = Setting.integer("max_attempts", 1...1000, default: 5, "deliveries in all, the first included")
    public static let backoffSetting = Setting.durations("backoff", default: [.seconds(1), .seconds(5), .seconds(30), .seconds(120)], "wait before attempt 2, 3, …; the last repeats")

    /// The settings a source embeds as `retry:`.
    public static let settingsSchema = SettingsSchema(maxAttemptsSetting, backoffSetting)

    /// Reads a policy from validated `retry:` settings.
    public init(settings: Settings) {
        self.init(maxAttempts: settings[Self.maxAttemptsSetting], backoff: settings[Self.backoffSetting])
    }

    /// The delay before delivery `attempt` (2 = the first retry), without jitter.
    public func delay(beforeAttempt attempt: Int) -> Duration {
        let index = min(max(attempt - 2, 0), backoff.count - 1)
        return backoff[index]
    }

    /// The sum of all delays a message can wait before its last attempt.
    public var totalDelay: Duration {
        (2...max(2, maxAttempts)).reduce(Duration.zero) { $0 + (maxAttempts >= 2 ? delay(beforeAttempt: $1) : .zero) }
    }
}
