/// The runtime's settings of a pipeline, written under `source.with` beside the source's own.
public struct WorkerConfiguration: Sendable, Hashable {
    /// Messages running through the steps at once.
    public var concurrency: Int
    /// On SIGTERM, how long running messages may take before they are cancelled.
    public var drainTimeout: Duration
    /// How long consumption stops after a sender-side failure that concerns every message, doubling up to 5 minutes.
    public var pause: Duration
    /// The longest wait a message spends parked in memory; longer waits go back to the source.
    public var maxPark: Duration
    /// Messages older than this (from when they first entered the system) are not sent.
    public var maxAge: Duration?
    public var retry: RetryPolicy

    public init(concurrency: Int = 32, drainTimeout: Duration = .seconds(20), pause: Duration = .seconds(5), maxPark: Duration = .seconds(10),
                maxAge: Duration? = nil, retry: RetryPolicy = RetryPolicy()) {
        self.concurrency = max(1, concurrency)
        self.drainTimeout = drainTimeout
        self.pause = pause
        self.maxPark = maxPark
        self.maxAge = maxAge
        self.retry = retry
    }

    /// The settings every source takes (added to each source plugin's schema).
    public static let settings = SettingsSchema([
        SettingSpec("concurrency", .integer(1...4096), default: .integer(32), "messages in flight at once"),
        SettingSpec("drain_timeout", .duration, default: .duration(.seconds(20)), "on SIGTERM, how long in-flight messages may take before they are requeued (a send in progress always finishes)"),
        SettingSpec("pause", .duration, default: .duration(.seconds(5)), "first pause after a sender-side failure; doubles up to 5m"),
        SettingSpec("max_park", .duration, default: .duration(.seconds(10)), "longest wait (pacing, a pair hold, a paused sender) kept in memory; longer ones go through the delay queues"),
        SettingSpec("max_age", .duration, "a message older than this when it is about to be sent is dead-lettered as expired; age counts from the message's timestamp, else from its first receipt"),
        SettingSpec("retry", .object(RetryPolicy.settingsSchema), "retry policy"),
    ])

    /// Reads the configuration from validated source settings (defaults where absent).
    public init(settings: Settings) {
        func duration(_ name: String, _ fallback: Duration) -> Duration { (try? settings.duration(name)) ?? fallback }
        let retry = (try? settings.object("retry")).flatMap { try? RetryPolicy(settings: $0) } ?? RetryPolicy()
        self.init(concurrency: (try? settings.integer("concurrency")) ?? 32, drainTimeout: duration("drain_timeout", .seconds(20)),
                  pause: duration("pause", .seconds(5)), maxPark: duration("max_park", .seconds(10)),
                  maxAge: try? settings.duration("max_age"), retry: retry)
    }

    /// Rules on the runtime's settings, run by `check`.
    static func check(_ source: ComponentDefinition) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        for name in ["drain_timeout", "max_age", "max_park"] {
            if case .duration(let value)? = source.settings[name]?.value, value <= .zero {
                diagnostics.append(.error(at: source.settings[name]?.location ?? source.location, "`\(name)` of source `\(source.uses)` must be more than 0"))
            }
        }
        return diagnostics
    }
}
