import PipelineKit

/// What the webhook refuses before the pipeline, in SPEC order: too large (413), a missing or
/// wrong signature (401), not a JSON object (400). The source and `outbound-worker test` share it.
enum WebhookAdmission {
    static func check(_ body: [UInt8], signatureHeader: String?, settings: WebhookSettings, signature: WebhookSignature) -> SourceAdmission.Refusal? {
        if body.count > settings.maxBodyBytes {
            return SourceAdmission.Refusal(status: 413, reason: "body is \(body.count) bytes, at most \(settings.maxBodyBytes)")
        }
        if !signature.verifies(signatureHeader, body: body) {
            return SourceAdmission.Refusal(status: 401, reason: "missing or wrong X-Hub-Signature-256")
        }
        // Read as the pipeline will read it: a body it could not (nested too deep, too many values) was answered
        // 200 and its statuses dropped, Meta not sending it again.
        switch Message.payload(of: body) {
        case .success(.object): return nil
        case .success: return SourceAdmission.Refusal(status: 400, reason: "the body is not a JSON object")
        case .failure(let unreadable): return SourceAdmission.Refusal(status: 400, reason: unreadable.reason)
        }
    }

    /// 200 once the outcome is final (events confirmed, or nothing to be made of the body); 503 to have Meta retry.
    static func status(for decision: Decision) -> Int {
        switch decision {
        case .ack, .deadLetter: 200
        case .retry, .requeue: 503
        }
    }

    static let admission = SourceAdmission(
        check: { body, headers, settings in
            let settings = WebhookSettings(settings)
            return check(body, signatureHeader: headers["x-hub-signature-256"], settings: settings, signature: WebhookSignature(appSecret: settings.appSecret))
        },
        authenticate: { body, settings in
            ["x-hub-signature-256": WebhookSignature(appSecret: WebhookSettings(settings).appSecret).header(for: body)]
        },
        respond: status(for:)
    )
}
