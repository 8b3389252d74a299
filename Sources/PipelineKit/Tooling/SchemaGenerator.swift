/// Generates the JSON Schema (2020-12) of the pipeline file format from the
/// plugins' setting declarations, for editors and CI. Variant files validate
/// against it too: nothing a variant may leave out is required.
public enum SchemaGenerator {
    public static func schema(for registry: PluginRegistry) -> JSONValue {
        let sources = registry.sources.values.sorted { $0.name < $1.name }
        let resources = registry.resources.values.sorted { $0.name < $1.name }
        let steps = registry.steps.values.sorted { $0.name < $1.name }
        let variable = JSONValue.object(["type": .string("string"), "pattern": .string("\\$\\{")])

        func component(_ names: [String], _ schemas: [(String, SettingsSchema)], extra: [String: JSONValue] = [:], required: [String]) -> JSONValue {
            var properties: [String: JSONValue] = ["uses": .object(["enum": .array(names.map(JSONValue.string))]), "with": .object(["type": .string("object")])]
            properties.merge(extra) { $1 }
            let conditions: [JSONValue] = schemas.map { name, settings in
                .object([
                    "if": .object(["properties": .object(["uses": .object(["const": .string(name)])]), "required": .array([.string("uses")])]),
                    "then": .object(["properties": .object(["with": settingsSchema(settings, variable: variable)])]),
                ])
            }
            return .object([
                "type": .string("object"),
                "properties": .object(properties),
                "additionalProperties": .bool(false),
                "required": .array(required.map(JSONValue.string)),
                "allOf": .array(conditions),
            ])
        }

        let policy: (_ cases: [String]) -> JSONValue = { .object(["enum": .array($0.map(JSONValue.string))]) }
        let stepSchema = component(
            steps.map(\.name), steps.map { ($0.name, $0.settings) },
            extra: [
                "name": .object(["type": .string("string"), "minLength": .number(1)]),
                "on_error": policy(ErrorPolicy.allCases.map(\.rawValue)),
                "degradation": policy(DegradationPolicy.allCases.map(\.rawValue)),
                "after": .object(["type": .string("string"), "description": .string("variant files only: insert a new step after this one")]),
                "remove": .object(["type": .string("boolean"), "description": .string("variant files only: drop the step of this name")]),
            ],
            required: ["name"]
        )
        return .object([
            "$schema": .string("https://json-schema.org/draft/2020-12/schema"),
            "$id": .string("https://outbound-worker/pipeline.schema.json"),
            "title": .string("outbound-worker pipeline"),
            "type": .string("object"),
            "additionalProperties": .bool(false),
            "properties": .object([
                "version": .object(["enum": .array([.number(1), .string("1")])]),
                "name": .object(["type": .string("string")]),
                "source": component(sources.map(\.name), sources.map { ($0.name, $0.settings) }, required: []),
                "resources": .object(["type": .string("object"), "additionalProperties": component(resources.map(\.name), resources.map { ($0.name, $0.settings) }, required: [])]),
                "steps": .object(["type": .string("array"), "items": stepSchema]),
                "events": events(registry, variable: variable),
                "health": .object([
                    "type": .string("object"), "additionalProperties": .bool(false),
                    "properties": .object(["port": typeSchema(.integer(1...65535), variable: variable)]),
                ]),
            ]),
        ])
    }

    /// `events:`: the sink's settings directly, with an optional `uses`.
    static func events(_ registry: PluginRegistry, variable: JSONValue) -> JSONValue {
        let sinks = registry.sinks.values.sorted { $0.name < $1.name }
        let variants: [JSONValue] = sinks.map { sink in
            guard case .object(var members) = settingsSchema(sink.settings, variable: variable), case .object(var properties)? = members["properties"] else { return .object([:]) }
            properties["uses"] = .object(["const": .string(sink.name)])
            members["properties"] = .object(properties)
            return .object(members)
        }
        return variants.count == 1 ? variants[0] : .object(["anyOf": .array(variants)])
    }

    static func settingsSchema(_ schema: SettingsSchema, variable: JSONValue) -> JSONValue {
        var properties: [String: JSONValue] = [:]
        for spec in schema.settings {
            var property = typeSchema(spec.type, variable: variable)
            if case .object(var members) = property {
                members["description"] = .string(spec.summary)
                property = .object(members)
            }
            properties[spec.name] = property
        }
        return .object(["type": .string("object"), "properties": .object(properties), "additionalProperties": .bool(false)])
    }

    static func typeSchema(_ type: SettingType, variable: JSONValue) -> JSONValue {
        let durationPattern = JSONValue.object(["type": .string("string"), "pattern": .string("^\\s*[0-9]+(\\.[0-9]+)?(ms|s|m|h)?\\s*$|\\$\\{")])
        let duration = JSONValue.object(["anyOf": .array([.object(["type": .string("number"), "minimum": .number(0)]), durationPattern])])
        switch type {
        case .string, .keyTemplate, .resource, .step:
            return .object(["type": .string("string")])
        case .integer(let range):
            var integer: [String: JSONValue] = ["type": .string("integer")]
            if let range {
                integer["minimum"] = .number(JSONNumber(range.lowerBound))
                integer["maximum"] = .number(JSONNumber(range.upperBound))
            }
            return .object(["anyOf": .array([.object(integer), .object(["type": .string("string"), "pattern": .string("^[0-9]+$|\\$\\{")])])])
        case .boolean:
            return .object(["anyOf": .array([.object(["type": .string("boolean")]), variable])])
        case .duration:
            return duration
        case .durationList:
            return .object(["type": .string("array"), "items": duration, "minItems": .number(1)])
        case .choice(let options):
            return .object(["anyOf": .array([.object(["enum": .array(options.map(JSONValue.string))]), variable])])
        case .choiceList(let options):
            return .object(["type": .string("array"), "items": .object(["anyOf": .array([.object(["enum": .array(options.map(JSONValue.string))]), variable])])])
        case .urlList, .addressList, .stringList:
            return .object(["anyOf": .array([.object(["type": .string("string")]), .object(["type": .string("array"), "items": .object(["type": .string("string")])])])])
        case .fraction:
            return .object(["anyOf": .array([.object(["type": .string("number"), "exclusiveMinimum": .number(0), "maximum": .number(1)]), .object(["type": .string("string"), "pattern": .string("^[0-9.]+$|\\$\\{")])])])
        case .object(let nested):
            return settingsSchema(nested, variable: variable)
        case .objectList(let nested):
            return .object(["type": .string("array"), "items": settingsSchema(nested, variable: variable)])
        case .map(let keys, let values):
            var map: [String: JSONValue] = ["type": .string("object"), "additionalProperties": typeSchema(values, variable: variable)]
            if case .digits = keys { map["propertyNames"] = .object(["pattern": .string("^[0-9]{1,32}$")]) }
            return .object(map)
        }
    }
}
