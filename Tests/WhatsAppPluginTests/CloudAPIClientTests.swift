import Foundation
import Logging
import PipelineKit
import Synchronization
import Testing
import TestSupport
import WhatsAppPlugin

@Suite struct ErrorClassificationTests {
    @Test(arguments: [1, 2, 4, 80007, 131000, 131016, 131057, 133004])
    func transientCodes(code: Int) {
        #expect(CloudAPIErrorTable.classify(code: code, status: 400) == .transient)
    }

    @Test(arguments: [100, 131008, 131009, 131026, 131047, 131051, 132000, 132001])
    func permanentCodes(code: Int) {
        #expect(CloudAPIErrorTable.classify(code: code, status: 500) == .permanent)
        #expect(CloudAPIErrorTable.classify(code: code, status: 400) == .permanent)
    }

    @Test func anUnlistedCodeFollowsTheStatus() {
        #expect(CloudAPIErrorTable.classify(code: 999_999, status: 500) == .transient)
        #expect(CloudAPIErrorTable.classify(code: 999_999, status: 503) == .transient)
        #expect(CloudAPIErrorTable.classify(code: 999_999, status: 429) == .transient)
        #expect(CloudAPIErrorTable.classify(code: 999_999, status: 400) == .permanent)
        #expect(CloudAPIErrorTable.classify(code: 999_999, status: 404) == .permanent)
    }

    @Test(arguments: [0, 190])
    func tokenCodes(code: Int) {
        #expect(CloudAPIErrorTable.classify(code: code, status: 401) == .tokenRejected)
    }

    @Test(arguments: [10, 200, 250, 299, 368, 131031])
    func senderCodes(code: Int) {
        #expect(CloudAPIErrorTable.classify(code: code, status: 403) == .senderRejected)
    }

    @Test func flowControlCodesAreNotFailures() {
        #expect(CloudAPIErrorTable.classify(code: 130429, status: 400) == .throughputLimit)
        #expect(CloudAPIErrorTable.classify(code: 131056, status: 400) == .pairRateLimit)
    }

    @Test(arguments: [(500, CloudAPIErrorClass.transient), (503, .transient), (429, .transient), (400, .permanent), (404, .permanent), (401, .permanent)])
    func withoutACodeTheStatusDecides(status: Int, expected: CloudAPIErrorClass) {
        #expect(CloudAPIErrorTable.classify(code: nil, status: status) == expected)
    }
}

/// Captures log lines so tests can check what was (not) logged.
final class CapturedLogs: @unchecked Sendable {
    private let lines = Mutex<[String]>([])
    func append(_ line: String) { lines.withLock { $0.append(line) } }
    var all: String { lines.withLock { $0.joined(separator: "\n") } }

    struct Handler: LogHandler {
        let sink: CapturedLogs
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            sink.append("\(event.message) \(metadata.merging(event.metadata ?? [:]) { $1 })")
        }
    }

    var logger: Logger { Logger(label: "captured") { _ in Handler(sink: self) } }
}

@Suite(.serialized) struct CloudAPIClientTests {
    static let token = "EAAG-secret-token-never-logged"

    private func client(_ baseURL: String, timeout: String = "2s", dryRun: Bool = false) throws -> CloudAPIClient {
        let yaml = "base_url: \"\(baseURL)\"\napi_version: v24.0\nphone_number_id: \"1055\"\naccess_token: \(Self.token)\ntimeout: \(timeout)\ndry_run: \(dryRun)\nmax_connections: 4\n"
        return try CloudAPIClient(settings: try settings(yaml, schema: CloudAPISettings.schema))
    }

    private let request = PreparedRequest(body: Array(#"{"to":"+5511987654321","type":"text","text":{"body":"Hi"}}"#.utf8), phoneNumberID: nil, recipient: "+5511987654321")

    @Test func successParsesTheWamidAndSendsTheToken() async throws {
        let server = CloudAPIStandInServer()
        let client = try client(try await server.start())
        defer { server.stop() }
        let wamid = try await client.send(request, from: "1055", logger: Logger(label: "t"))
        #expect(wamid == "wamid.standin.1")
        let recorded = try #require(server.requests.first)
        #expect(recorded.path == "/v24.0/1055/messages")
        #expect(recorded.authorization == "Bearer \(Self.token)")
        #expect(recorded.json?["to"]?.stringValue == "+5511987654321")
        await client.shutdown()
    }

    @Test func errorsAreClassifiedByCode() async throws {
        let server = CloudAPIStandInServer()
        let client = try client(try await server.start())
        defer { server.stop() }
        let cases: [(CloudAPIStandInServer.Answer, CloudAPIErrorClass, String)] = [
            (.error(status: 503, code: 131000, message: "Something went wrong"), .transient, "HTTP 503, code 131000: Something went wrong"),
            (.error(status: 400, code: 131026, message: "Message undeliverable"), .permanent, "HTTP 400, code 131026: Message undeliverable"),
            (.error(status: 401, code: 190, message: "Error validating access token"), .tokenRejected, "code 190"),
            (.error(status: 403, code: 200, message: "Permission denied"), .senderRejected, "code 200"),
            (.error(status: 500, code: 100, message: "Invalid parameter"), .permanent, "code 100"),
            (.error(status: 500, code: 987_654, message: "Unknown"), .transient, "code 987654"),
            (.error(status: 400, code: 130429, message: "Rate limit hit"), .throughputLimit, "code 130429"),
            (.error(status: 400, code: 131056, message: "Pair rate limit hit"), .pairRateLimit, "code 131056"),
            (.raw(status: 502, body: "<html>bad gateway</html>"), .transient, "HTTP 502"),
        ]
        for (answer, kind, reason) in cases {
            server.answer { _, _ in answer }
            do {
                _ = try await client.send(request, from: "1055", logger: Logger(label: "t"))
                Issue.record("\(answer) should fail")
            } catch {
                #expect(error.kind == kind, "\(answer)")
                #expect(error.reason.contains(reason), "\(error.reason)")
                #expect(!error.reason.contains(Self.token))
            }
        }
        await client.shutdown()
    }

    @Test func aStallBeyondTheTimeoutIsTransient() async throws {
        let server = CloudAPIStandInServer()
        server.answer { _, _ in .stall(.seconds(2)) }
        let client = try client(try await server.start(), timeout: "500ms")
        defer { server.stop() }
        let started = ContinuousClock.now
        do {
            _ = try await client.send(request, from: "1055", logger: Logger(label: "t"))
            Issue.record("a stalled request must time out")
        } catch {
            #expect(error.kind == .transient)
            #expect(error.reason.contains("timeout"))
        }
        #expect(ContinuousClock.now - started < .milliseconds(1500))
        #expect(await client.health() != .up)
        await client.shutdown()
    }

    @Test func keepAliveReusesConnections() async throws {
        let server = CloudAPIStandInServer()
        let client = try client(try await server.start())
        defer { server.stop() }
        for _ in 0..<50 { _ = try await client.send(request, from: "1055", logger: Logger(label: "t")) }
        let ports = Set(server.requests.compactMap(\.clientPort))
        #expect(server.requests.count == 50)
        #expect(ports.count == 1, "50 sequential requests used \(ports.count) connections")
        await client.shutdown()
    }

    @Test func unreachableAPIIsTransient() async throws {
        let client = try client("http://127.0.0.1:1")
        do {
            _ = try await client.send(request, from: "1055", logger: Logger(label: "t"))
            Issue.record("no server: must fail")
        } catch {
            #expect(error.kind == .transient)
            #expect(error.reason.hasPrefix("connection error"))
        }
        await client.shutdown()
    }

    @Test func dryRunSendsNothingAndNeverLogsTheToken() async throws {
        let logs = CapturedLogs()
        let client = try client("http://127.0.0.1:1", dryRun: true)
        let wamid = try await client.send(request, from: "1055", logger: logs.logger)
        #expect(wamid.hasPrefix("wamid.dryrun."))
        #expect(logs.all.contains("dry run"))
        #expect(logs.all.contains("Bearer ***"))
        #expect(!logs.all.contains(Self.token))
        #expect(!logs.all.contains("Hi"), "message bodies are never logged")
    }

    @Test func aSenderWithoutATokenIsTheSendersProblem() async throws {
        let client = try CloudAPIClient(settings: try settings("access_tokens: { \"42\": t }\n", schema: CloudAPISettings.schema))
        do {
            _ = try await client.send(request, from: "1055", logger: Logger(label: "t"))
            Issue.record("no token: must fail")
        } catch {
            #expect(error.kind == .senderRejected)
            #expect(error.reason.contains("no access token for sender 1055"))
        }
        await client.shutdown()
    }

    @Test func eachSenderSendsWithItsOwnToken() async throws {
        let server = CloudAPIStandInServer()
        let base = try await server.start()
        defer { server.stop() }
        let client = try CloudAPIClient(settings: try settings("base_url: \"\(base)\"\naccess_token: shared\naccess_tokens: { \"42\": tenant-42 }\n", schema: CloudAPISettings.schema))
        _ = try await client.send(request, from: "42", logger: Logger(label: "t"))
        _ = try await client.send(request, from: "43", logger: Logger(label: "t"))
        #expect(server.requests.map(\.authorization) == ["Bearer tenant-42", "Bearer shared"])
        #expect(server.requests.map(\.path) == ["/v24.0/42/messages", "/v24.0/43/messages"])
        await client.shutdown()
    }
}
