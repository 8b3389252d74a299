import Foundation
import Logging

/// One message as a source handed it out, until the runtime settles it.
public struct Delivery: Sendable {
    /// The body as delivered.
    public var body: [UInt8]
    /// Deliveries of this message that used an attempt before this one (0 on first delivery).
    public var attemptsMade: Int
    /// When the message first entered the system, if the source knows (`max_age` counts from it).
    public var firstSeen: Date?
    /// What steps noted on the message before it last went round the source (`Message.carried`).
    public var carried: [String: String]
    /// The source's own handle on the delivery, given back to it in `settle`.
    public var receipt: any Sendable

    public init(body: [UInt8], attemptsMade: Int = 0, firstSeen: Date? = nil, carried: [String: String] = [:], receipt: any Sendable) {
        self.body = body
        self.attemptsMade = attemptsMade
        self.firstSeen = firstSeen
        self.carried = carried
        self.receipt = receipt
    }
}

/// A message the runtime gives up on: where it failed and why.
public struct DeadLetter: Sendable, Equatable {
    public var step: String
    public var reason: String
    /// Deliveries made, this one included (`x-attempts`).
    public var attemptsMade: Int
    /// The error code of the system that refused the message, when it gave one.
    public var code: Int?

    public init(step: String, reason: String, attemptsMade: Int, code: Int? = nil) {
        self.step = step
        self.reason = reason
        self.attemptsMade = attemptsMade
        self.code = code
    }
}

/// What becomes of a delivery; the source carries it out durably before it lets go of it.
public enum Settlement: Sendable, Equatable {
    /// Done: acknowledge.
    case ack
    /// Straight back to the source as it is (shutdown, a wait given up): no copy, no attempt used.
    case release
    /// Deliver a copy again after `after`, recording `attemptsMade` and `carried` on it, then acknowledge the original.
    case redeliver(after: Duration, attemptsMade: Int, carried: [String: String] = [:])
    /// Publish a copy where dead letters go, then acknowledge the original.
    case deadLetter(DeadLetter)
}

/// What a source reports besides deliveries.
public enum SourceEvent: Sendable {
    case delivery(Delivery)
    /// Connected (again) to `String` (a broker URL without its password, a listening address).
    case connected(String)
    case disconnected(String)
    /// After `stopIntake`: no delivery follows this event.
    case intakeStopped
}

/// What a source reports for `/health` and `/ready`.
public struct SourceStatus: Sendable, Equatable {
    /// Connected to its broker (or listening).
    public var connected: Bool
    /// Receiving messages now.
    public var consuming: Bool
    /// The last connection error, if not connected.
    public var error: String?

    public init(connected: Bool, consuming: Bool, error: String? = nil) {
        self.connected = connected
        self.consuming = consuming
        self.error = error
    }
}

/// Where messages come from: a transport of deliveries and settlements. The runtime's
/// `PipelineWorker` owns everything else (concurrency, attempts, waits, pauses, drain).
///
/// A source is built by its `SourcePlugin`; the runtime calls `start`, reads `events`
/// until `.intakeStopped` (after its own `stopIntake`), settles every delivery, then `stop`s it:
///
/// ```swift
/// try await source.start()
/// for await event in source.events {
///     guard case .delivery(let delivery) = event else { continue }
///     _ = await source.settle(delivery, .ack)
/// }
/// ```
public protocol Source: Sendable {
    /// Deliveries and connection changes, from `start` until `stop`.
    var events: AsyncStream<SourceEvent> { get }
    /// How many deliveries the source hands out unsettled at most (e.g. the prefetch count):
    /// the runtime never keeps more waiting than this.
    var capacity: Int { get }
    /// Connects and prepares (declares queues, binds a port); throws when it never can
    /// (wrong credentials, a conflicting declaration), retries while the other side is down.
    func start() async throws
    /// Carries out a settlement; false when it could not and the delivery went back to the source instead.
    func settle(_ delivery: Delivery, _ settlement: Settlement) async -> Bool
    /// Stops receiving for a while (a sender-side failure); deliveries out stay settleable.
    func pause()
    /// Receives again after `pause`.
    func resume()
    /// Stops receiving for good; `events` then yields `.intakeStopped`.
    func stopIntake()
    /// Sends what is still pending (acknowledgements) and disconnects; `events` ends.
    func stop() async
    /// Connection and consumption state.
    func status() -> SourceStatus
    /// What the worker does with a delivery whose outcome the sink refused: true (a queue) keeps it
    /// and reports the outcome again with backoff — handed back, it would come round again at
    /// once and count toward the queue's delivery limit; false (an HTTP endpoint, whose caller
    /// retries) hands it back at once (`.release`). Default: true.
    var keepsDeliveriesWhileOutcomesAreRefused: Bool { get }
    /// Whether `delivery` is still this worker's to settle: false once the connection it came on is
    /// gone (the broker has handed it out again). Default: true.
    func stillHolds(_ delivery: Delivery) -> Bool
}

extension Source {
    public var keepsDeliveriesWhileOutcomesAreRefused: Bool { true }
    public func stillHolds(_ delivery: Delivery) -> Bool { true }
}

/// What a source plugin gets to build the source.
public struct SourceBuildContext: Sendable {
    public var settings: Settings
    /// The runtime's settings read from the same `with:` (concurrency, retry, drain…).
    public var worker: WorkerConfiguration
    public var logger: Logger

    public init(settings: Settings, worker: WorkerConfiguration, logger: Logger) {
        self.settings = settings
        self.worker = worker
        self.logger = logger
    }
}

/// How a source that answers its senders (an HTTP endpoint) takes input, so `outbound-worker test`
/// can exercise it without a network: what it refuses before the pipeline, how a test input is
/// made authentic, and what it answers for an outcome.
public struct SourceAdmission: Sendable {
    /// Refused before the pipeline: the status answered and why.
    public struct Refusal: Sendable, Equatable {
        public var status: Int
        public var reason: String

        public init(status: Int, reason: String) {
            self.status = status
            self.reason = reason
        }
    }

    /// Whether the source refuses `body` with `headers` (names lowercased).
    public var check: @Sendable (_ body: [UInt8], _ headers: [String: String], _ settings: Settings) -> Refusal?
    /// The headers that make `body` authentic (a signature).
    public var authenticate: @Sendable (_ body: [UInt8], _ settings: Settings) -> [String: String]
    /// The status answered once the pipeline decided.
    public var respond: @Sendable (Decision) -> Int

    public init(check: @escaping @Sendable ([UInt8], [String: String], Settings) -> Refusal?, authenticate: @escaping @Sendable ([UInt8], Settings) -> [String: String],
                respond: @escaping @Sendable (Decision) -> Int) {
        self.check = check
        self.authenticate = authenticate
        self.respond = respond
    }
}

/// A source kind (`source.uses`): its settings and how to build it. The runtime's own
/// settings (`WorkerConfiguration.settings`) are added to every source's schema.
public struct SourcePlugin: Sendable {
    public var name: String
    public var summary: String
    /// The source's own settings followed by the runtime's.
    public var settings: SettingsSchema
    /// Rules across settings, run by `check` after every setting is valid.
    public var check: (@Sendable (PipelineDefinition) -> [Diagnostic])?
    /// For sources that answer their senders: how they take input (used by `outbound-worker test`).
    public var admission: SourceAdmission?
    public var make: @Sendable (SourceBuildContext) async throws -> any Source

    public init(name: String, summary: String, settings: SettingsSchema, check: (@Sendable (PipelineDefinition) -> [Diagnostic])? = nil,
                admission: SourceAdmission? = nil, make: @escaping @Sendable (SourceBuildContext) async throws -> any Source) {
        self.name = name
        self.summary = summary
        self.settings = SettingsSchema(settings.settings + WorkerConfiguration.settings.settings.filter { settings[$0.name] == nil })
        self.check = check
        self.admission = admission
        self.make = make
    }
}
