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
    /// A waiting message stays in memory only while what its steps hold for it lasts (`Step.heldFor`:
    /// an idempotency claim's lease, after which another worker's copy may take it over). False only
    /// where nothing else can take a message over: one worker on in-memory stores (`outbound-worker test`).
    public var waitsWithinHolds = true
    /// How long a delivery may stay with the worker while it waits in memory (parked again and
    /// again, or looking again: `Wait.looksAgainAfter`) before its waits go through the source:
    /// well within RabbitMQ's `consumer_timeout` (30 min by default), which closes a channel that
    /// holds a delivery unacknowledged longer — and every delivery of that channel goes back to
    /// the queue. nil: no limit (one worker on in-memory stores, `outbound-worker test`).
    public var longestInMemory: Duration? = .seconds(300)

    public init(concurrency: Int = Self.concurrencySetting.defaultValue, drainTimeout: Duration = Self.drainTimeoutSetting.defaultValue,
                pause: Duration = Self.pauseSetting.defaultValue, maxPark: Duration = Self.maxParkSetting.defaultValue,
                maxAge: Duration? = nil, retry: RetryPolicy = RetryPolicy()) {
        self.concurrency = max(1, concurrency)
        self.drainTimeout = drainTimeout
        self.pause = pause
        self.maxPark = maxPark
        self.maxAge = maxAge
        self.retry = retry
    }

    public static let concurrencySetting = Setting.integer("concurrency", 1...4096, default: 32, "messages in flight at once")
    public static let drainTimeoutSetting = Setting.duration("drain_timeout", default: .seconds(20),
                                                      "on SIGTERM, how long in-flight messages may take before they are requeued (a send in progress always finishes)")
    public static let pauseSetting = Setting.duration("pause", default: .seconds(5), "first pause after a sender-side failure; doubles up to 5m")
    public static let maxParkSetting = Setting.duration("max_park", default: .seconds(10),
                                                 "longest wait (pacing, a pair hold, a paused sender) kept in memory; longer ones go through the delay queues")
    public static let maxAgeSetting = Setting.optionalDuration("max_age",
                                                        "a message older than this when it is about to be sent is dead-lettered as expired; age counts from the message's timestamp, else from its first receipt")
    public static let retrySetting = Setting.object("retry", RetryPolicy.settingsSchema, "retry policy")

    /// The settings every source takes (added to each source plugin's schema).
    public static let settings = SettingsSchema(concurrencySetting, drainTimeoutSetting, pauseSetting, maxParkSetting, maxAgeSetting, retrySetting)

    /// Reads the configuration from validated source settings (defaults where absent).
    public init(settings: Settings) {
        self.init(concurrency: settings[Self.concurrencySetting], drainTimeout: settings[Self.drainTimeoutSetting], pause: settings[Self.pauseSetting],
                  maxPark: settings[Self.maxParkSetting], maxAge: settings[Self.maxAgeSetting], retry: RetryPolicy(settings: settings[Self.retrySetting]))
    }

    /// Rules on the runtime's settings, run by `check`.
    static func check(_ source: ComponentDefinition) -> [Diagnostic] {
        var diagnostics: [Diagnostic] = []
        let settings = source.settings
        let durations: [(String, Duration?, SourceLocation?)] = [(drainTimeoutSetting.name, settings[drainTimeoutSetting], settings.location(of: drainTimeoutSetting)),
                         (maxAgeSetting.name, settings[maxAgeSetting], settings.location(of: maxAgeSetting)),
                         (maxParkSetting.name, settings[maxParkSetting], settings.location(of: maxParkSetting)),
                         (pauseSetting.name, settings[pauseSetting], settings.location(of: pauseSetting))]
        for case let (name, value?, location) in durations where value <= .zero {
            diagnostics.append(.error(at: location ?? source.location, "`\(name)` of source `\(source.uses)` must be more than 0"))
        }
        return diagnostics
    }
}
