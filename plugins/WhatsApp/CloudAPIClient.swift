import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOSSL
import PipelineKit
import Synchronization

/// The `whatsapp_cloud_api` resource: one shared async-http-client with a bounded keep-alive pool.
public final class CloudAPIClient: CloudAPISender {
    public let configuration: CloudAPIConfiguration
    public let slotStore: (any SlotStore)?
    private let httpClient: HTTPClient?
    private let lastTransportError = Mutex<(String, ContinuousClock.Instant)?>(nil)

    public init(settings: Settings, slotStore: (any SlotStore)? = nil) throws {
        configuration = try CloudAPIConfiguration(settings: settings)
        self.slotStore = slotStore
        if configuration.dryRun {
            httpClient = nil
        } else {
            var http = HTTPClient.Configuration()
            http.connectionPool = .init(idleTimeout: .seconds(60), concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maxConnections)
            let timeout = TimeAmount.milliseconds(configuration.timeout.milliseconds)
            http.timeout = .init(connect: timeout, read: timeout)
            http.decompression = .disabled
            // HTTP/2 when the server offers it through ALPN (graph.facebook.com does), HTTP/1.1 otherwise.
            http.httpVersion = .automatic
            if let caFile = configuration.caFile {
                guard FileManager.default.isReadableFile(atPath: caFile) else {
                    throw SettingsError(message: "`ca_file` of whatsapp_cloud_api: cannot read \(caFile)")
                }
                var tls = TLSConfiguration.makeClientConfiguration()
                tls.trustRoots = .file(caFile)
                http.tlsConfiguration = tls
            }
            httpClient = HTTPClient(eventLoopGroupProvider: .singleton, configuration: http)
        }
    }

    public func send(_ request: PreparedRequest, from sender: String, logger: Logger) async throws(CloudAPIFailure) -> String {
        guard let token = configuration.token(for: sender) else {
            throw CloudAPIFailure(.senderRejected, status: nil, code: nil, reason: "no access token for sender \(sender): set `access_token` or `access_tokens.\(sender)`")
        }
        let path = "/\(configuration.apiVersion)/\(sender)/messages"
        guard let httpClient else {
            logger.info("dry run: request not sent", metadata: ["path": .string(path), "bytes": "\(request.body.count)", "authorization": "Bearer ***"])
            return "wamid.dryrun.\(UUID().uuidString.lowercased())"
        }
        var httpRequest = HTTPClientRequest(url: configuration.baseURL + path)
        httpRequest.method = .POST
        httpRequest.headers.add(name: "Authorization", value: "Bearer \(token)")
        httpRequest.headers.add(name: "Content-Type", value: "application/json")
        httpRequest.body = .bytes(ByteBuffer(bytes: request.body))
        let status: Int
        let body: ByteBuffer
        do {
            let response = try await httpClient.execute(httpRequest, timeout: .milliseconds(configuration.timeout.milliseconds))
            status = Int(response.status.code)
            body = try await response.body.collect(upTo: 1 << 20)
        } catch {
            let reason = Self.describe(error, timeout: configuration.timeout)
            lastTransportError.withLock { $0 = (reason, .now) }
            Counter(label: "outbound_dispatch_total", dimensions: [("status", "none"), ("code", "transport")]).increment()
            throw CloudAPIFailure(.transient, status: nil, code: nil, reason: reason)
        }
        lastTransportError.withLock { $0 = nil }
        return try Self.interpret(status: status, body: Data(body.readableBytesView))
    }

    private static let sent = Counter(label: "outbound_dispatch_total", dimensions: [("status", "200"), ("code", "none")])

    /// Turns an HTTP answer into a wamid or a classified failure.
    public static func interpret(status: Int, body: Data) throws(CloudAPIFailure) -> String {
        if (200..<300).contains(status) {
            (status == 200 ? sent : Counter(label: "outbound_dispatch_total", dimensions: [("status", String(status)), ("code", "none")])).increment()
            let answer = try? JSONDecoder().decode(SentAnswer.self, from: body)
            return answer?.messages?.first?.id ?? ""
        }
        let error = try? JSONDecoder().decode(CloudAPIErrorBody.Envelope.self, from: body).error
        Counter(label: "outbound_dispatch_total", dimensions: [("status", String(status)), ("code", error?.code.map(String.init) ?? "none")]).increment()
        throw CloudAPIFailure.answer(status: status, error: error)
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
