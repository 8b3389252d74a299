/// Every plugin the runtime can build, by `uses:` name. The runtime knows no plugin:
/// the executable registers the built-ins, and tests register their own.
public struct PluginRegistry: Sendable {
    public private(set) var sources: [String: SourcePlugin] = [:]
    public private(set) var resources: [String: ResourcePlugin] = [:]
    public private(set) var steps: [String: StepPlugin] = [:]
    public private(set) var sinks: [String: SinkPlugin] = [:]

    public init() {}

    public mutating func register(_ plugin: SourcePlugin) { sources[plugin.name] = plugin }
    public mutating func register(_ plugin: ResourcePlugin) { resources[plugin.name] = plugin }
    public mutating func register(_ plugin: StepPlugin) { steps[plugin.name] = plugin }
    public mutating func register(_ plugin: SinkPlugin) { sinks[plugin.name] = plugin }
}
