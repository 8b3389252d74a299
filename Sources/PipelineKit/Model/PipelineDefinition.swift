/// The source or a resource of a pipeline after validation.
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
}

/// One step of a pipeline after validation, policies resolved.
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
}

/// A whole pipeline, variant merged, variables substituted, defaults filled and validated.
public struct PipelineDefinition: Sendable, Hashable {
    public var version: Int
    public var name: String
    public var source: ComponentDefinition
    public var resources: [ComponentDefinition]
    public var steps: [StepDefinition]
    public var retry: RetryPolicy
    /// The base file and, with a variant, the variant file.
    public var files: [String]

    public init(version: Int, name: String, source: ComponentDefinition, resources: [ComponentDefinition], steps: [StepDefinition], retry: RetryPolicy, files: [String]) {
        self.version = version
        self.name = name
        self.source = source
        self.resources = resources
        self.steps = steps
        self.retry = retry
        self.files = files
    }

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
