import Foundation
import OutboundWorkerApp
import Testing

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
            not a line
            """.write(toFile: path, atomically: true, encoding: .utf8)
        let values = ProcessEnvironment.parseDotEnv(path: path)
        #expect(values["REDIS_HOST"] == "redis.internal")
        #expect(values["REDIS_PORT"] == "6380")
        #expect(values["WHATSAPP_ACCESS_TOKEN"] == "quoted value # not a comment")
        #expect(values["SINGLE"] == "single")
        #expect(values["TRAILING"] == "value")
        #expect(values["EMPTY"] == "")
        #expect(values.count == 6)
    }

    @Test func theRealEnvironmentWins() throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("env-\(UUID().uuidString)").path
        try "PATH=/nowhere\nOUTBOUND_DOTENV_ONLY=from-file\n".write(toFile: path, atomically: true, encoding: .utf8)
        let values = ProcessEnvironment.load(dotEnvPath: path)
        #expect(values["PATH"] == ProcessInfo.processInfo.environment["PATH"])
        #expect(values["OUTBOUND_DOTENV_ONLY"] == "from-file")
    }
}
