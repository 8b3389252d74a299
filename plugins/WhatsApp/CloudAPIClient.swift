import AsyncHTTPClient
import Foundation
import Logging
import Metrics
import NIOCore
import NIOHTTP1
import NIOSSL
import PipelineKit
import Synchronization
import Tracing

/// The `whatsapp_cloud_api` resource: one shared async-http-client with a bounded keep-alive pool.
///
/// Each send ends one of four ways (SPEC 6, 13): an answer (a wamid, or an error classified by its
/// code), *not sent* (`.transient`: the connection could not be opened or the request was not fully
/// written), *in doubt* (`.inDoubt`: written, no complete answer), or sent with the wamid unknown
/// (nil: a 2xx whose body could not be read) — unless it is not tried at all (`.connectionOpening`:
/// another send was opening the connection meanwhile, `ConnectionOpener`). Which one is read from what async-http-client reported
/// before the failure (`CloudAPIExchange`), not guessed from the error's type. Failures that concern
/// every message — an untrusted certificate, a host name that does not resolve, something that is not
/// the Cloud API answering — are `.configuration`, and `health()` reports them until the Cloud API answers.
public final class CloudAPIClient: CloudAPISender {
    public let configuration: CloudAPIConfiguration
    public let slotStore: (any SlotStore)?
    private let httpClient: HTTPClient?
    /// The API's host and port, for the words of a failure.
    private let host: String
    private let port: Int
    /// Time to open a connection (TCP and TLS), and to wait for a free one: min(`timeout`, 5 s).
    private let connectTimeout: Duration
    private let problems = Mutex(Problems())
    /// Each sender's request head, made once.
    private let requestHeads = SenderRequestHeads()
    /// The tracer of sends, nil unless one was bootstrapped before the resource was built.
    private let tracer = MessageTracing().tracer
    /// How long the pool keeps an idle connection open.
    private static let idleTimeout = Duration.seconds(60)
    /// One send at a time opens a connection while none is known to be open: for half the pool's
    /// idle timeout after an answer (the Cloud API, a load balancer or a NAT on the way may close an
    /// idle connection sooner than the pool; taken as closed, it costs one send alone).
    private let opener = ConnectionOpener(openFor: idleTimeout / 2)
    /// Sends that waited while another opened the connection, then took a new turn.
    private static let connectionWaits = Counter(label: "outbound_connection_waits_total")

    /// What `health()` reports.
    private struct Problems {
        /// The last transport failure (not sent, in doubt), reported for 30 s.
        var transport: (reason: String, at: ContinuousClock.Instant)?
        /// A configuration failure, reported until the Cloud API answers.
        var configuration: String?
        /// A 2xx answer without a wamid (what it was), reported until an answer with a wamid or a Cloud API error object comes, for 10 min at most.
        var withoutWamid: (what: String, at: ContinuousClock.Instant)?
    }

    public init(settings: Settings, slotStore: (any SlotStore)? = nil) throws {
        configuration = CloudAPIConfiguration(settings: settings)
        self.slotStore = slotStore
        _ = Self.withoutWamid  // exported at 0 from the start, for the alert's rate
        let url = URL(string: configuration.baseURL)
        host = url?.host ?? configuration.baseURL
        port = url?.port ?? (url?.scheme == "http" ? 80 : 443)
        // A connection that works opens in well under a second (TCP, then TLS). One that does not — SYNs
        // dropped by a firewall, a TLS terminator that never answers — leaves the request *not sent*,
        // safe to retry: it should fail soon rather than use up the whole `timeout`, which would then
        // also be the time a TLS failure takes to show (SPEC 6). It also bounds a request's wait for
        // a free connection when all `max_connections` are busy (async-http-client's
        // `connectionDeadline` is now + this timeout).
        connectTimeout = min(configuration.timeout, .seconds(5))
        if configuration.dryRun {
            httpClient = nil
        } else {
            var http = HTTPClient.Configuration()
            // The send's client span is this resource's own (Meta's error code and the wamid on it), not the HTTP client's.
            http.tracing.tracer = nil
            http.connectionPool = .init(idleTimeout: .milliseconds(Self.idleTimeout.milliseconds), concurrentHTTP1ConnectionsPerHostSoftLimit: configuration.maxConnections)
            // By default async-http-client retries a failed connect with backoff and fails the waiting
            // requests only at their connect deadline, with the last error
            // (`HTTPConnectionPool.HTTP1StateMachine.failedToCreateNewConnection`, `timeoutRequest`).
            // Off, a failed connect (TLS rejected, DNS, refused) fails the requests waiting for a
            // connection at once, with its own error: they are not sent, and the worker's retry and
            // pause policies decide what next, not a hidden loop.
            http.connectionPool.retryConnectionEstablishment = false
            http.timeout = .init(connect: .milliseconds(connectTimeout.milliseconds), read: .milliseconds(configuration.timeout.milliseconds))
            http.decompression = .disabled
            // A redirect is not the Cloud API (async-http-client would follow a 301/302 as a GET without the body).
            http.redirectConfiguration = .disallow
            // Network.framework (Apple platforms) would otherwise wait for connectivity until the deadline.
            http.networkFrameworkWaitForConnectivity = false
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
            httpClient = HTTPClient(eventLoopGroup: CloudAPIEventLoop.shared, configuration: http)
        }
    }

    /// Sends `request`; returns its wamid, or nil when the Cloud API accepted it (2xx) but its answer
    /// could not be read — the wamid then comes with the message's first status (SPEC 13).
    public func send(_ request: PreparedRequest, from sender: String, logger: Logger) async throws(CloudAPIFailure) -> String? {
        let entry = try await enterConnection()
        guard let tracer, let parent = ServiceContext.current else { return try await post(request, from: sender, entry: entry, logger: logger, span: nil) }
        // A client span under the step's: the HTTP status, Meta's error code and the wamid on it.
        let span = tracer.startSpan("POST /{version}/{phone_number_id}/messages", context: parent, ofKind: .client)
        defer { span.end() }
        // Set together: each `attributes[…] =` copies the span's attributes under its lock, twice.
        span.updateAttributes {
            $0["http.request.method"] = "POST"
            $0["url.template"] = "/{version}/{phone_number_id}/messages"
            $0["whatsapp.phone_number_id"] = sender
        }
        do {
            let wamid = try await post(request, from: sender, entry: entry, logger: logger, span: span)
            if let wamid { span.attributes["whatsapp.wamid"] = wamid }
            return wamid
        } catch {
            span.updateAttributes {
                if let status = error.status { $0["http.response.status_code"] = status }
                if let code = error.code { $0["whatsapp.error.code"] = code }
                $0["error.type"] = error.kind.rawValue
            }
            span.setStatus(SpanStatus(code: .error, message: error.reason))
            throw error
        }
    }

    /// How this send goes while no connection is known to be open (`ConnectionOpener`): a send that
    /// waited for another to open one is not tried (its slot is past), and takes no span.
    private func enterConnection() async throws(CloudAPIFailure) -> ConnectionOpener.Entry {
        guard httpClient != nil else { return .open }
        let entry = await opener.enter()
        guard entry != .waited else {
            Self.connectionWaits.increment()
            throw CloudAPIFailure(.connectionOpening, status: nil, code: nil, reason: "not sent: another send was opening the connection to the Cloud API; a new turn keeps the pace")
        }
        return entry
    }

    /// Sends the request of a send that entered as `entry`.
    private func post(_ request: PreparedRequest, from sender: String, entry: ConnectionOpener.Entry, logger: Logger,
                      span: (any Span)?) async throws(CloudAPIFailure) -> String? {
        // Whether the send found a connection open: answered, or written and then timed out (a
        // connection that broke, or never opened, is not open any more).
        var connectionOpen = false
        defer { if httpClient != nil { opener.ended(entry, connectionOpen: connectionOpen) } }
        guard let token = configuration.token(for: sender) else {
            throw CloudAPIFailure(.senderRejected, status: nil, code: nil, reason: "no access token for sender \(sender): set `access_token` or `access_tokens.\(sender)`")
        }
        let path = "/\(configuration.apiVersion)/\(sender)/messages"
        guard let httpClient else {
            logger.info("dry run: request not sent", metadata: ["path": .string(path), "bytes": "\(request.body.count)", "authorization": "Bearer ***"])
            return "wamid.dryrun.\(UUID().uuidString.lowercased())"
        }
        var httpRequest: HTTPClient.Request
        do {
            httpRequest = try requestHeads.head(for: sender) {
                try HTTPClient.Request(url: configuration.baseURL + path, method: .POST,
                                       headers: HTTPHeaders([("Authorization", "Bearer \(token)"), ("Content-Type", "application/json")]))
            }
            httpRequest.body = .bytes(request.body)
        } catch {
            throw configurationFailure(CloudAPIFailure(.configuration, status: nil, code: nil, reason: "`base_url` \(configuration.baseURL) is not an http:// or https:// URL (\(error))"))
        }
        let exchange = CloudAPIExchange(bodyBytes: request.body.count)
        let task = httpClient.execute(request: httpRequest, delegate: exchange, deadline: .now() + .milliseconds(configuration.timeout.milliseconds))
        let answer: CloudAPIExchange.Answer
        do {
            answer = try await withTaskCancellationHandler {
                try await task.get()
            } onCancel: {
                task.cancel()
            }
        } catch {
            let progress = exchange.progress(failedWith: error)
            let described = TransportFailure.describe(error, timeout: configuration.timeout, connectTimeout: connectTimeout)
            connectionOpen = progress.status != nil || (progress.written && described.timedOut)
            return try transportFailure(described, error, progress, logger: logger)
        }
        connectionOpen = true
        span?.attributes["http.response.status_code"] = answer.status
        let reading = answer.body.withUnsafeReadableBytes { body in
            Self.read(status: answer.status, headers: answer.headers, body: body, truncated: answer.truncated)
        }
        switch reading {
        case .sent(let wamid):
            answered(fromCloudAPI: true)
            return wamid
        case .sentWithoutWamid(let what):
            answered()
            sentWithoutWamid(status: answer.status, what, logger: logger)
            return nil
        case .failed(let failure) where failure.kind == .configuration:
            throw configurationFailure(failure)
        case .failed(let failure):
            // An error object with its code is the Cloud API's own answer, as a wamid is.
            answered(fromCloudAPI: failure.code != nil)
            throw failure
        }
    }

    /// A request that failed without a complete answer: sent with the wamid unknown (after a 2xx
    /// head), an error answer cut off, in doubt (written, no answer), or not sent.
    private func transportFailure(_ described: (words: String, timedOut: Bool), _ error: any Error, _ progress: CloudAPIExchange.Progress,
                                  logger: Logger) throws(CloudAPIFailure) -> String? {
        let (what, timedOut) = described
        if let status = progress.status {
            Self.count(status: String(status), code: "none")
            answered()
            if (200..<300).contains(status) {
                logger.warning("sent, but the answer was cut off: the wamid comes with the first status", metadata: ["status": "\(status)", "error": .string(what)])
                sentWithoutWamid(status: status, "an answer cut off: \(what)", logger: logger)
                return nil
            }
            // The Cloud API answered an error, so it did not accept the message: safe to send again.
            throw CloudAPIFailure(.transient, status: status, code: nil, reason: "HTTP \(status), answer cut off: \(what)")
        }
        if progress.written {
            Self.count(status: "none", code: "in_doubt")
            let reason = "in doubt: the request was sent, then \(what)\(timedOut ? " (timeout)" : "")"
            problems.withLock { $0.transport = (reason, .now) }
            throw CloudAPIFailure(.inDoubt, status: nil, code: nil, reason: reason)
        }
        if let problem = TransportFailure.configurationProblem(error, host: host, port: port) {
            Self.count(status: "none", code: "configuration")
            throw configurationFailure(CloudAPIFailure(.configuration, status: nil, code: nil, reason: problem))
        }
        Self.count(status: "none", code: "transport")
        let reason = timedOut ? "timeout: \(what)" : "connection error: \(what)"
        problems.withLock { $0.transport = (reason, .now) }
        throw CloudAPIFailure(.transient, status: nil, code: nil, reason: reason)
    }

    /// Records a configuration failure for `health()` and returns it.
    private func configurationFailure(_ failure: CloudAPIFailure) -> CloudAPIFailure {
        problems.withLock { $0.configuration = failure.reason }
        return failure
    }

    /// A 2xx answer without a wamid: sent (SPEC 13: the wamid comes with the first status) — but
    /// the Cloud API always gives one, and a `base_url` that points at something else answering 2xx
    /// (a web server, a proxy's page) would have every message counted sent and none delivered.
    /// Counted (`outbound_sent_without_wamid_total`, alert `OutboundWorkerSentWithoutWamid`),
    /// logged when it begins, and on `/health` until an answer with a wamid or a Cloud API error object comes (10 min at most).
    private func sentWithoutWamid(status: Int, _ what: String, logger: Logger) {
        Self.withoutWamid.increment()
        let begins = problems.withLock { problems in
            defer { problems.withoutWamid = (what, .now) }
            return problems.withoutWamid.map { ContinuousClock.now - $0.at >= Self.withoutWamidShown } ?? true
        }
        if begins {
            logger.warning("the Cloud API accepted a message without a wamid in its answer: sent, its wamid comes with the first status; if every answer is so, `base_url` is not the Cloud API",
                           metadata: ["status": "\(status)", "answer": .string(what)])
        }
    }

    private static let withoutWamid = Counter(label: "outbound_sent_without_wamid_total")
    /// How long `health()` shows a 2xx without a wamid when no answer of the Cloud API's came since.
    private static let withoutWamidShown: Duration = .seconds(600)

    /// The Cloud API answered: whatever was wrong with reaching it is not any more (and with a
    /// wamid, or an error object of its own: the answers are the Cloud API's).
    private func answered(fromCloudAPI: Bool = false) {
        problems.withLock { problems in
            problems.transport = nil
            problems.configuration = nil
            if fromCloudAPI { problems.withoutWamid = nil }
        }
    }

    private static let sent = Counter(label: "outbound_dispatch_total", dimensions: [("status", "200"), ("code", "none")])

    private static func count(status: String, code: String) {
        Counter(label: "outbound_dispatch_total", dimensions: [("status", status), ("code", code)]).increment()
    }

    /// Turns an HTTP answer into a wamid (nil: accepted, wamid unknown) or a classified failure.
    public static func interpret(status: Int, body: Data, contentType: String? = nil) throws(CloudAPIFailure) -> String? {
        var headers = HTTPHeaders()
        if let contentType { headers.add(name: "Content-Type", value: contentType) }
        let reading = body.withUnsafeBytes { read(status: status, headers: headers, body: $0, truncated: false) }
        switch reading {
        case .sent(let wamid): return wamid
        case .sentWithoutWamid: return nil
        case .failed(let failure): throw failure
        }
    }

    enum Reading {
        case sent(String)
        /// A 2xx without a wamid in it (what the answer was).
        case sentWithoutWamid(String)
        case failed(CloudAPIFailure)
    }

    /// `messages[0].id` of a success answer (`{"messaging_product":"whatsapp","contacts":[…],
    /// "messages":[{"id":"wamid.…"}]}`). Nil for anything else — not JSON, cut off, no `messages`, a
    /// first message without a string `id`, an empty id: sent, wamid unknown (SPEC 13).
    static func wamid(in body: UnsafeRawBufferPointer) -> String? {
        guard let answer = try? JSONValue(parsing: body), let id = answer["messages"]?.arrayValue?.first?["id"]?.stringValue, !id.isEmpty else { return nil }
        return id
    }

    /// Reads a complete answer (SPEC 6): a 2xx is sent (its wamid, when its body has one); an error
    /// with a Cloud API error object is classified by its code; without one, a 5xx or 429 is transient,
    /// 413, 414 and 431 permanent, and anything else — an HTML error page, a 4xx, a redirect — is not
    /// the Cloud API: a configuration failure.
    static func read(status: Int, headers: HTTPHeaders, body: UnsafeRawBufferPointer, truncated: Bool) -> Reading {
        let html = isHTML(headers: headers, body: body)
        if (200..<300).contains(status) {
            // Any 2xx is sent (SPEC 13), even one whose body is no Cloud API answer: the wamid then comes with the first status.
            (status == 200 ? sent : Counter(label: "outbound_dispatch_total", dimensions: [("status", String(status)), ("code", "none")])).increment()
            if !truncated, !html, let wamid = wamid(in: body) { return .sent(wamid) }
            return .sentWithoutWamid(truncated ? "an answer over the size read" : html ? "an HTML page\(title(of: body))" : "no messages[0].id in the answer")
        }
        let error = html ? nil : try? JSONDecoder().decode(CloudAPIErrorBody.Envelope.self, from: Data(body)).error
        count(status: String(status), code: error?.code.map(String.init) ?? "none")
        if let error { return .failed(.answer(status: status, error: error)) }
        if html {
            return .failed(CloudAPIFailure(.configuration, status: status, code: nil, reason: "HTTP \(status) with an HTML page\(title(of: body)), not a Cloud API answer: check `base_url` (a proxy in the way?)"))
        }
        if status >= 500 || status == 429 { return .failed(.answer(status: status, error: nil)) }
        // Too large a request, URI or header: this message's own fault, whoever answered.
        if [413, 414, 431].contains(status) { return .failed(.answer(status: status, error: nil)) }
        let location = headers.first(name: "Location").map { " to \($0.prefix(utf8Bytes: 200))" } ?? ""
        let what = (300..<400).contains(status) ? "a redirect\(location)" : "no Cloud API error object in its body"
        return .failed(CloudAPIFailure(.configuration, status: status, code: nil, reason: "HTTP \(status) with \(what), not a Cloud API answer: check `base_url` and `api_version`"))
    }

    /// An HTML page: said by its content type (`text/html`, `application/xhtml+xml`), or a body that
    /// starts with `<`. Without allocating: this runs for every answer.
    private static func isHTML(headers: HTTPHeaders, body: UnsafeRawBufferPointer) -> Bool {
        if let type = headers.first(name: "Content-Type") {
            // "html" anywhere, ASCII case-insensitively ("html" repeats no prefix of itself, so a
            // mismatch restarts the match at most one byte back).
            let html: UInt32 = 0x6C6D_7468  // "html", little end first
            var matched: UInt32 = 0
            for byte in type.utf8 {
                let lower = UInt32(byte | 0x20)
                if lower == (html >> (8 * matched)) & 0xFF {
                    matched += 1
                    if matched == 4 { return true }
                } else {
                    matched = lower == html & 0xFF ? 1 : 0
                }
            }
        }
        for byte in body {
            switch byte {
            case UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "\r"): continue
            default: return byte == UInt8(ascii: "<")
            }
        }
        return false
    }

    /// ` ("…")` with the page's `<title>`, when it has one (at most 100 characters).
    private static func title(of body: UnsafeRawBufferPointer) -> String {
        let page = String(decoding: body.prefix(4096), as: UTF8.self)
        guard let open = page.range(of: "<title>", options: .caseInsensitive),
              let close = page.range(of: "</title>", options: .caseInsensitive, range: open.upperBound..<page.endIndex) else { return "" }
        let title = page[open.upperBound..<close.lowerBound].split(whereSeparator: \.isWhitespace).joined(separator: " ")
        return title.isEmpty ? "" : " (\"\(title.prefix(utf8Bytes: 100))\")"
    }

    public func health() async -> HealthStatus {
        let now = self.problems.withLock { $0 }
        if let reason = now.configuration { return .down(reason) }
        if let (what, when) = now.withoutWamid, ContinuousClock.now - when < Self.withoutWamidShown {
            return .down("HTTP 2xx without a wamid (\(what)): counted sent; is `base_url` the Cloud API?")
        }
        guard let (reason, when) = now.transport, ContinuousClock.now - when < .seconds(30) else { return .up }
        return .down(reason)
    }

    public func shutdown() async {
        try? await httpClient?.shutdown()
    }
}
