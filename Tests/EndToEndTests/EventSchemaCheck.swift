import Foundation
import PipelineKit
import TestSupport

extension EndToEndHarness {
    /// What Python's jsonschema says of `bodies` against the worker's `schema --events`: "events ok",
    /// or the first errors.
    func eventSchemaCheck(_ bodies: [JSONValue]) throws -> String {
        let schemaFile = folder.appendingPathComponent("events.schema.json")
        try TestServices.run(TestServices.executable, ["schema", "--events"]).output.write(to: schemaFile, atomically: true, encoding: .utf8)
        let samples = folder.appendingPathComponent("events-\(UUID().uuidString.prefix(6)).json")
        try JSONValue.array(bodies).encodedString().write(to: samples, atomically: true, encoding: .utf8)
        return try TestServices.run("/usr/bin/env", ["python3", "-c", """
            import json, sys, jsonschema
            schema = json.load(open(sys.argv[1])); validator = jsonschema.Draft202012Validator(schema)
            bad = [e.message for body in json.load(open(sys.argv[2])) for e in validator.iter_errors(body)]
            assert not bad, bad[:3]
            print("events ok")
            """, schemaFile.path, samples.path]).output
    }
}
