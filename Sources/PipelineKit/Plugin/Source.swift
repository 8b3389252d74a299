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
    /// How many deliveries the source hands out unsettled at most (e.g. the prefetch count), per
    /// lane when it has lanes: the runtime never keeps more of a lane waiting than this.
    var capacity: Int { get }
    /// Its priority lanes, most urgent first (SPEC 14); empty: none. Default: none.
    var lanes: [Lane] { get }
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
    public var lanes: [Lane] { [] }
    public var keepsDeliveriesWhileOutcomesAreRefused: Bool { true }
    public func stillHolds(_ delivery: Delivery) -> Bool { true }
}
