import PipelineKit

/// How a Cloud API failure is handled, decided on `error.code` first and the HTTP status second.
public enum CloudAPIErrorClass: String, Sendable, Equatable {
    /// Retry with backoff.
    case transient
    /// Dead-letter at once.
    case permanent
    /// The sender's token or account: retry, pause consumption, report on /health.
    case senderSide = "sender_side"
    /// Rate limit for one sender–recipient pair: retry that message only, after 4^X seconds.
    case pairRateLimit = "pair_rate_limit"
}

/// The one table of Cloud API error codes (SPEC section 6).
public enum CloudAPIErrorTable {
    public static let transientCodes: Set<Int> = [1, 2, 4, 80007, 130429, 131000, 131016, 131056, 131057, 133004]
    public static let senderSideCodes: Set<Int> = [0, 190, 10, 368, 131031]
    public static let senderSideRanges: [ClosedRange<Int>] = [200...299]
    public static let pairRateLimitCode = 131056

    /// The class of a failure with `code` (if the body had one) and HTTP `status`.
    public static func classify(code: Int?, status: Int) -> CloudAPIErrorClass {
        if let code {
            if code == pairRateLimitCode { return .pairRateLimit }
            if transientCodes.contains(code) { return .transient }
            if senderSideCodes.contains(code) || senderSideRanges.contains(where: { $0.contains(code) }) { return .senderSide }
            return .permanent
        }
        return status >= 500 || status == 429 ? .transient : .permanent
    }
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

extension StepFailure {
    /// The failure for a Cloud API error answer; `attempt` sets the pair-rate-limit wait (4^(attempt-1) s).
    public static func cloudAPI(status: Int, error: CloudAPIErrorBody?, attempt: Int) -> StepFailure {
        let code = error?.code
        var reason = "HTTP \(status)"
        if let code { reason += ", code \(code)" }
        if let message = error?.message { reason += ": \(message.prefix(300))" }
        if let details = error?.error_data?.details { reason += " (\(details.prefix(300)))" }
        switch CloudAPIErrorTable.classify(code: code, status: status) {
        case .transient: return StepFailure(.transient, reason)
        case .permanent: return StepFailure(.permanent, reason)
        case .senderSide: return StepFailure(.senderSide, reason)
        case .pairRateLimit:
            let exponent = min(max(attempt - 1, 0), 6)
            let wait = (0..<exponent).reduce(1) { value, _ in value * 4 }
            return StepFailure(.transient, reason, retryAfter: .seconds(wait))
        }
    }
}
