import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import PipelineKit
import Synchronization

/// The `whatsapp_cloud_api` resource: one shared async-http-client with a bounded keep-alive pool.
public final class CloudAPIClient: CloudAPISender {
    private let httpClient: HTTPClient?
    private let baseURL: String
    private let apiVersion: String
    private let defaultPhoneNumberID: String?
    private let authorization: String
    private let timeout: Duration
    private let lastTransportError = Mutex<(String, ContinuousClock.Instant)?>(nil)

    public init(settings: Settings) throws {
        var base = try settings.string("base_url")
        while base.hasSuffix("/") { base.removeLast() }
        baseURL = base
        apiVersion = try settings.string("api_version")
        defaultPhoneNumberID = settings.optionalString("phone_number_id")
        authorization = "Bearer \(try settings.string("access_token"))"
        timeout = try settings.duration("timeout")
        if try settings.boolean("dry_run") {
            httpClient = nil
        } else {
            var configuration = HTTPClient.Configuration()
            configuration.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: try settings.integer("max_connections"))
            configuration.timeout = .init(connect: .milliseconds(timeout.milliseconds), read: .milliseconds(timeout.milliseconds))
            configuration.decompression = .disabled
            httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
        }
    }

    public func send(_ request: PreparedRequest, attempt: Int, logger: Logger) async throws(StepFailure) -> String {
        guard let phoneNumberID = request.phoneNumberID ?? defaultPhoneNumberID else {
            throw StepFailure(.senderSide, "no sender: set WHATSAPP_PHONE_NUMBER_ID (resource `phone_number_id`) or the message's phoneNumberId")
        }
        let path = "/\(apiVersion)/\(phoneNumberID)/messages"
        guard let httpClient else {
            logger.info("dry run: request not sent", metadata: ["path": .string(path), "bytes": "\(request.body.count)", "authorization": "Bearer ***"])
            return "wamid.dryrun.\(UUID().uuidString.lowercased())"
        }
        var httpRequest = HTTPClientRequest(url: baseURL + path)
        httpRequest.method = .POST
        httpRequest.headers.add(name: "Authorization", value: authorization)
        httpRequest.headers.add(name: "Content-Type", value: "application/json")
        httpRequest.body = .bytes(ByteBuffer(bytes: request.body))
        let status: Int
        let body: ByteBuffer
        do {
            let response = try await httpClient.execute(httpRequest, timeout: .milliseconds(timeout.milliseconds))
            status = Int(response.status.code)
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            let reason = Self.describe(error, timeout: timeout)
            lastTransportError.withLock { $0 = (reason, .now) }
            Counter(label: "outbound_dispatch_total", dimensions: [("status", "none"), ("code", "transport")]).increment()
            throw StepFailure(.transient, reason)
        }
        lastTransportError.withLock { $0 = nil }
        return try Self.interpret(status: status, body: Data(body.readableBytesView), attempt: attempt)
    }

    private static let sent = Counter(label: "outbound_dispatch_total", dimensions: [("status", "200"), ("code", "none")])

    /// Turns an HTTP answer into a wamid or a classified failure.
    public static func interpret(status: Int, body: Data, attempt: Int) throws(StepFailure) -> String {
        if (200..<300).contains(status) {
            (status == 200 ? sent : Counter(label: "outbound_dispatch_total", dimensions: [("status", String(status)), ("code", "none")])).increment()
            let answer = try? JSONDecoder().decode(SentAnswer.self, from: body)
            return answer?.messages?.first?.id ?? ""
        }
        let error = try? JSONDecoder().decode(CloudAPIErrorBody.Envelope.self, from: body).error
        Counter(label: "outbound_dispatch_total", dimensions: [("status", String(status)), ("code", error?.code.map(String.init) ?? "none")]).increment()
        throw StepFailure.cloudAPI(status: status, error: error, attempt: attempt)
    }

    public func health() async -> HealthStatus {
        guard let (reason, when) = lastTransportError.withLock({ $0 }), ContinuousClock.now - when < .seconds(30) else { return .up }
        return .down(reason)
    }

    public func shutdown() async {
        try? await httpClient?.shutdown()
    }

    /// The part of a success answer the worker keeps: `messages[0].id`, the wamid.
    private struct SentAnswer: Decodable {
        struct SentMessage: Decodable {
            var id: String?
        }

        var messages: [SentMessage]?
    }

    private static func describe(_ error: any Error, timeout: Duration) -> String {
        if let error = error as? HTTPClientError {
            switch error {
            case .deadlineExceeded, .readTimeout, .connectTimeout:
                return "timeout: no answer within \(DurationParser.format(timeout))"
            default:
                return "connection error: \(error)"
            }
        }
        return "connection error: \(error)"
    }
}
