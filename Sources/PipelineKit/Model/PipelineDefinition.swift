/// The source or a resource of a pipeline after validation. Two definitions are equal when
/// their values are: where they were written does not matter (a reload that only moved
/// lines or added a comment changes nothing).
public struct ComponentDefinition: Sendable, Hashable {
    /// The resource's name under `resources:` (`source` for the source).
    public var name: String
    public var uses: String
    public var settings: Settings
    public var location: SourceLocation

    public init(name: String, uses: String, settings: Settings, location: SourceLocation) {
        self.name = name
        self.uses = uses
        self.settings = settings
        self.location = location
    }

    public static func == (lhs: ComponentDefinition, rhs: ComponentDefinition) -> Bool {
        lhs.name == rhs.name && lhs.uses == rhs.uses && lhs.settings == rhs.settings
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(uses)
        hasher.combine(settings)
    }
}

/// One step of a pipeline after validation, policies resolved; equal when the values are (see `ComponentDefinition`).
public struct StepDefinition: Sendable, Hashable {
    public var name: String
    public var uses: String
    public var settings: Settings
    public var onError: ErrorPolicy
    public var degradation: DegradationPolicy
    /// Where `on_error` and `degradation` came from (written or default).
    public var onErrorOrigin: ValueOrigin
    public var degradationOrigin: ValueOrigin
    public var location: SourceLocation

    public init(name: String, uses: String, settings: Settings, onError: ErrorPolicy, degradation: DegradationPolicy,
                onErrorOrigin: ValueOrigin = .pluginDefault, degradationOrigin: ValueOrigin = .pluginDefault, location: SourceLocation) {
        self.name = name
        self.uses = uses
        self.settings = settings
        self.onError = onError
        self.degradation = degradation
        self.onErrorOrigin = onErrorOrigin
        self.degradationOrigin = degradationOrigin
        self.location = location
    }

    public static func == (lhs: StepDefinition, rhs: StepDefinition) -> Bool {
        lhs.name == rhs.name && lhs.uses == rhs.uses && lhs.settings == rhs.settings && lhs.onError == rhs.onError && lhs.degradation == rhs.degradation
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(uses)
        hasher.combine(settings)
        hasher.combine(onError)
        hasher.combine(degradation)
    }
}

/// A whole pipeline, variant merged, variables substituted, defaults filled and validated;
/// equal to another when its values are (files and positions aside).
public struct PipelineDefinition: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var source: ComponentDefinition
    public var resources: [ComponentDefinition]
    public var steps: [StepDefinition]
    /// The runtime's settings, read from `source.with`.
    public var worker: WorkerConfiguration
    /// Where outcomes are reported (`events:`), when the pipeline has such a section.
    public var events: ComponentDefinition?
    /// The port of `/health`, `/ready` and `/metrics` (`health.port`), when the pipeline sets one.
    public var healthPort: Int?
    /// The base file and, with a variant, the variant file.
    public var files: [String]
    /// Each resource's time limit of one call, as its plugin declares it (`ResourcePlugin.callTimeout`).
    public var callTimeouts: [String: Duration] = [:]
    /// The irreversible step's policy for sends in doubt, as its plugin declares it (`StepPlugin.inDoubtPolicy`).
    public var inDoubt: (step: String, policy: InDoubtPolicy)?

    public init(version: Int, name: String, source: ComponentDefinition, resources: [ComponentDefinition], steps: [StepDefinition], worker: WorkerConfiguration,
                events: ComponentDefinition? = nil, healthPort: Int? = nil, files: [String]) {
        self.version = version
        self.name = name
        self.source = source
        self.resources = resources
        self.steps = steps
        self.worker = worker
        self.events = events
        self.healthPort = healthPort
        self.files = files
    }

    public static func == (lhs: PipelineDefinition, rhs: PipelineDefinition) -> Bool {
        lhs.version == rhs.version && lhs.name == rhs.name && lhs.source == rhs.source && lhs.resources == rhs.resources && lhs.steps == rhs.steps
            && lhs.events == rhs.events && lhs.healthPort == rhs.healthPort
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(name)
        hasher.combine(source)
        hasher.combine(resources)
        hasher.combine(steps)
    }

    /// The resource whose calls may take longest, and how long (a send takes at most that).
    public var slowestCall: (resource: String, timeout: Duration)? {
        callTimeouts.max { $0.value < $1.value || ($0.value == $1.value && $0.key > $1.key) }.map { ($0.key, $0.value) }
    }

    /// The retry policy (`source.with.retry`).
    public var retry: RetryPolicy { worker.retry }

    public func resource(named name: String) -> ComponentDefinition? {
        resources.first { $0.name == name }
    }

    public func step(named name: String) -> StepDefinition? {
        steps.first { $0.name == name }
    }

    /// A short stable fingerprint of the resolved pipeline (shown on `/health`, logged on reload).
    public var digest: String {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in PlanRenderer.render(self, explain: false).utf8 {
            hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
