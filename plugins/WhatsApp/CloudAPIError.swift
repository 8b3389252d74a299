import PipelineKit

/// How a Cloud API failure is handled, decided on `error.code` first and the HTTP status second.
public enum CloudAPIErrorClass: String, Sendable, Equatable {
    /// Not sent (the connection could not be opened, or the request was not fully written), or an
    /// answer that says to try again (5xx, 429, a transient code): retry with backoff.
    case transient
    /// The request was fully written and no complete answer came (a read timeout, the connection
    /// reset or closed, an HTTP/2 stream reset, the deadline): Meta may have accepted it, so it is
    /// never simply sent again (SPEC 13).
    case inDoubt = "in_doubt"
    /// The Cloud API cannot be reached as configured: its TLS certificate is not trusted, its host name
    /// does not resolve, or what answers is not the Cloud API (an HTML page, a 4xx without a Cloud API
    /// error object). Concerns every message: pause with backoff, like a sender-side failure (SPEC 6).
    case configuration
    /// Dead-letter at once.
    case permanent
    /// The sender's token (invalid, expired): every sender using that token pauses.
    case tokenRejected = "token_rejected"
    /// The sender itself (no permission for this phone number, account restricted): that sender pauses.
    case senderRejected = "sender_rejected"
    /// Not sent: another send was opening the connection to the Cloud API meanwhile
    /// (`ConnectionOpener`). The message's slot is past: it takes a new turn (no attempt used).
    case connectionOpening = "connection_opening"
    /// The sender's throughput was exceeded (130429): send again at its next slot, slower.
    case throughputLimit = "throughput_limit"
    /// The sender–recipient pair was limited (131056): hold the pair.
    case pairRateLimit = "pair_rate_limit"
    /// The template is paused (132015): its messages wait for it (SPEC 15).
    case templatePaused = "template_paused"
    /// The template is disabled (132016): its messages are dead-lettered without a request.
    case templateDisabled = "template_disabled"
    /// Meta declined a marketing message to keep the user's experience healthy (131049): try once more much later.
    case marketingDeclined = "marketing_declined"
    /// The user stopped marketing messages (131050): dead letter, and an opt-out.
    case marketingStopped = "marketing_stopped"
    /// The sender sends too much marketing (131048): its marketing waits with backoff.
    case spamLimit = "spam_limit"
}

/// The one table of Cloud API error codes (SPEC sections 6 and 8).
public enum CloudAPIErrorTable {
    public static let transientCodes: Set<Int> = [1, 2, 4, 80007, 131000, 131016, 131057, 133004]
    public static let permanentCodes: Set<Int> = [100, 131008, 131009, 131026, 131047, 131051, 132000, 132001]
    public static let tokenCodes: Set<Int> = [0, 190]
    public static let senderCodes: Set<Int> = [10, 368, 131031]
    public static let senderRanges: [ClosedRange<Int>] = [200...299]
    public static let throughputCode = 130429
    public static let pairRateLimitCode = 131056
    /// The account limits of SPEC 15.
    public static let accountLimitCodes: [Int: CloudAPIErrorClass] = [
        132015: .templatePaused, 132016: .templateDisabled, 131049: .marketingDeclined, 131050: .marketingStopped, 131048: .spamLimit,
    ]

    /// The class of a failure with `code` (if the body had one) and HTTP `status`. A code not
    /// listed is transient with a 5xx or 429 status and permanent with any other.
    public static func classify(code: Int?, status: Int) -> CloudAPIErrorClass {
        if let code {
            if code == throughputCode { return .throughputLimit }
            if code == pairRateLimitCode { return .pairRateLimit }
            if let limit = accountLimitCodes[code] { return limit }
            if transientCodes.contains(code) { return .transient }
            if permanentCodes.contains(code) { return .permanent }
            if tokenCodes.contains(code) { return .tokenRejected }
            if senderCodes.contains(code) || senderRanges.contains(where: { $0.contains(code) }) { return .senderRejected }
        }
        return status >= 500 || status == 429 ? .transient : .permanent
    }
}

/// A failed send: what the Cloud API (or the transport) said, classified.
public struct CloudAPIFailure: Error, Sendable, Equatable, CustomStringConvertible {
    public var kind: CloudAPIErrorClass
    /// The HTTP status, nil when there was no answer (timeout, connection error).
    public var status: Int?
    public var code: Int?
    public var reason: String

    public init(_ kind: CloudAPIErrorClass, status: Int?, code: Int?, reason: String) {
        self.kind = kind
        self.status = status
        self.code = code
        self.reason = reason
    }

    /// The failure for an error answer.
    public static func answer(status: Int, error: CloudAPIErrorBody?) -> CloudAPIFailure {
        let code = error?.code
        var reason = "HTTP \(status)"
        if let code { reason += ", code \(code)" }
        if let message = error?.message { reason += ": \(message.prefix(utf8Bytes: 300))" }
        if let details = error?.error_data?.details { reason += " (\(details.prefix(utf8Bytes: 300)))" }
        // What Meta's support asks for about a failed request.
        if let trace = error?.fbtrace_id { reason += " [fbtrace_id \(trace.prefix(utf8Bytes: 64))]" }
        return CloudAPIFailure(CloudAPIErrorTable.classify(code: code, status: status), status: status, code: code, reason: reason)
    }

    public var description: String { reason }
}

/// The `error` object of a Cloud API error response.
public struct CloudAPIErrorBody: Sendable, Decodable, Equatable {
    public struct Envelope: Decodable {
        public var error: CloudAPIErrorBody
    }

    public struct ErrorData: Sendable, Decodable, Equatable {
        public var details: String?
    }

    public var message: String?
    public var type: String?
    public var code: Int?
    public var error_subcode: Int?
    public var error_data: ErrorData?
    public var fbtrace_id: String?

    public init(message: String? = nil, type: String? = nil, code: Int? = nil, error_subcode: Int? = nil, error_data: ErrorData? = nil, fbtrace_id: String? = nil) {
        self.message = message
        self.type = type
        self.code = code
        self.error_subcode = error_subcode
        self.error_data = error_data
        self.fbtrace_id = fbtrace_id
    }
}
