import Foundation
import OutboundWorkerApp
import Testing
import TestSupport

@Suite struct DotEnvTests {
    @Test func parsesCommentsQuotesAndExports() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("env-\(UUID().uuidString)").path
        try """
            # a comment
            REDIS_HOST=redis.internal
            export REDIS_PORT=6380
            WHATSAPP_ACCESS_TOKEN="quoted value # not a comment"
            SINGLE='single'
            TRAILING=value # comment
            EMPTY=
            QUOTED_WITH_COMMENT="EAAG token" # rotated 05-01
            SINGLE_WITH_COMMENT='p@ss#word'   # a comment
            INNER_QUOTE="a"b"
            HASH_AFTER_QUOTE="k3"#x9"
            not a line
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let values = ProcessEnvironment.parseDotEnv(path: path)
        #expect(values["REDIS_HOST"] == "redis.internal")
        #expect(values["REDIS_PORT"] == "6380")
        #expect(values["WHATSAPP_ACCESS_TOKEN"] == "quoted value # not a comment")
        #expect(values["SINGLE"] == "single")
        #expect(values["TRAILING"] == "value")
        #expect(values["EMPTY"] == "")
        #expect(values["QUOTED_WITH_COMMENT"] == "EAAG token", "a quoted value with a comment after it: the quotes were kept")
        #expect(values["SINGLE_WITH_COMMENT"] == "p@ss#word")
        #expect(values["INNER_QUOTE"] == "a\"b")
        #expect(values["HASH_AFTER_QUOTE"] == "k3\"#x9", "a # right after a quote is not a comment")
        #expect(values.count == 10)
    }

    @Test func theRealEnvironmentWins() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("env-\(UUID().uuidString)").path
        try "PATH=/nowhere\nOUTBOUND_DOTENV_ONLY=from-file\n".write(toFile: path, atomically: true, encoding: .utf8)
        let values = ProcessEnvironment.load(dotEnvPath: path)
        #expect(values["PATH"] == ProcessInfo.processInfo.environment["PATH"])
        #expect(values["OUTBOUND_DOTENV_ONLY"] == "from-file")
    }

    /// SPEC 3: "`.env.example` lists them all" — every variable a shipped pipeline reads.
    @Test func theExampleListsEveryVariableTheShippedPipelinesRead() throws {
        let folder = TestServices.repository.appendingPathComponent("pipelines")
        let files = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".yaml") }
        #expect(files.count >= 5)
        var read = Set<String>()
        for file in files {
            let text = try String(contentsOf: folder.appendingPathComponent(file), encoding: .utf8)
            // Not in comments, and not `$${`, a literal `${` (SPEC 5).
            for line in text.split(separator: "\n") {
                let code = line.firstIndex(of: "#").map { line[..<$0] } ?? line[...]
                for match in code.replacing("$${", with: "").matches(of: /\$\{([A-Z][A-Z0-9_]*)/) { read.insert(String(match.1)) }
            }
        }
        #expect(read.contains("WHATSAPP_ACCESS_TOKEN") && read.contains("WEBHOOK_PORT"))
        let listed = ProcessEnvironment.parseDotEnv(path: TestServices.repository.appendingPathComponent(".env.example").path)
        #expect(read.subtracting(listed.keys).sorted() == [], "missing from .env.example")
    }
}
