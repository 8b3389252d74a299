import Foundation
import Logging
import PipelineKit
import Synchronization
import Testing
import TestSupport
import WhatsAppPlugin

@Suite struct ErrorClassificationTests {
    @Test(arguments: [1, 2, 4, 80007, 130429, 131000, 131016, 131057, 133004])
    func transientCodes(code: Int) {
        #expect(CloudAPIErrorTable.classify(code: code, status: 400) == .transient)
    }

    @Test(arguments: [100, 131008, 131009, 131026, 131047, 131051, 132000, 132001, 999_999])
    func permanentCodes(code: Int) {
        #expect(CloudAPIErrorTable.classify(code: code, status: 500) == .permanent)
    }

    @Test(arguments: [0, 190, 10, 200, 250, 299, 368, 131031])
    func senderSideCodes(code: Int) {
        #expect(CloudAPIErrorTable.classify(code: code, status: 401) == .senderSide)
    }

    @Test func pairRateLimitWaitsFourToTheAttempt() {
        #expect(CloudAPIErrorTable.classify(code: 131056, status: 400) == .pairRateLimit)
        #expect(StepFailure.cloudAPI(status: 400, error: CloudAPIErrorBody(code: 131056), attempt: 1).retryAfter == .seconds(1))
        #expect(StepFailure.cloudAPI(status: 400, error: CloudAPIErrorBody(code: 131056), attempt: 3).retryAfter == .seconds(16))
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
        let wamid = try await client.send(request, attempt: 1, logger: Logger(label: "t"))
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
        let cases: [(CloudAPIStandInServer.Answer, StepFailure.Kind, String)] = [
            (.error(status: 503, code: 131000, message: "Something went wrong"), .transient, "HTTP 503, code 131000: Something went wrong"),
            (.error(status: 400, code: 131026, message: "Message undeliverable"), .permanent, "HTTP 400, code 131026: Message undeliverable"),
            (.error(status: 401, code: 190, message: "Error validating access token"), .senderSide, "code 190"),
            (.error(status: 500, code: 100, message: "Invalid parameter"), .permanent, "code 100"),
            (.raw(status: 502, body: "<html>bad gateway</html>"), .transient, "HTTP 502"),
        ]
        for (answer, kind, reason) in cases {
            server.answer { _, _ in answer }
            do {
                _ = try await client.send(request, attempt: 1, logger: Logger(label: "t"))
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
            _ = try await client.send(request, attempt: 1, logger: Logger(label: "t"))
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
        for _ in 0..<50 { _ = try await client.send(request, attempt: 1, logger: Logger(label: "t")) }
        let ports = Set(server.requests.compactMap(\.clientPort))
        #expect(server.requests.count == 50)
        #expect(ports.count == 1, "50 sequential requests used \(ports.count) connections")
        await client.shutdown()
    }

    @Test func unreachableAPIIsTransient() async throws {
        let client = try client("http://127.0.0.1:1")
        do {
            _ = try await client.send(request, attempt: 1, logger: Logger(label: "t"))
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
        let wamid = try await client.send(request, attempt: 1, logger: logs.logger)
        #expect(wamid.hasPrefix("wamid.dryrun."))
        #expect(logs.all.contains("dry run"))
        #expect(logs.all.contains("Bearer ***"))
        #expect(!logs.all.contains(Self.token))
        #expect(!logs.all.contains("Hi"), "message bodies are never logged")
    }

    @Test func aMissingSenderIsTheSendersProblem() async throws {
        let client = try CloudAPIClient(settings: try settings("access_token: t\n", schema: CloudAPISettings.schema))
        await #expect(throws: StepFailure(.senderSide, "no sender: set WHATSAPP_PHONE_NUMBER_ID (resource `phone_number_id`) or the message's phoneNumberId")) {
            try await client.send(request, attempt: 1, logger: Logger(label: "t"))
        }
        await client.shutdown()
    }
}
