import PipelineKit

/// The settings of the `whatsapp_webhook` source, read once.
struct WebhookSettings: Sendable {
    static let port = Setting.integer("port", 1...65535, default: 8081, "port the webhook listens on")
    static let path = Setting.string("path", default: "/webhooks/whatsapp", "path of the callback URL registered with Meta")
    static let verifyToken = Setting.requiredString("verify_token", secrecy: .secret, "the token Meta's verification GET must carry")
    static let appSecret = Setting.requiredString("app_secret", secrecy: .secret, "the app secret that signs each POST (X-Hub-Signature-256)")
    static let maxBodyBytes = Setting.integer("max_body_bytes", 1024...16_777_216, default: 1 << 20, "larger POSTs are refused with 413")

    static let maxPendingBytes = Setting.integer("max_pending_bytes", 1_048_576...1_073_741_824, default: 64 << 20,
                                                 "bytes of POSTs that may wait for the pipeline (at least 2 × max_body_bytes), and apart from them of the bodies being received and not yet checked (as they arrive); a POST beyond is answered 503 (Meta delivers it again later)")

    static let schema = SettingsSchema(port, path, verifyToken, appSecret, maxBodyBytes, maxPendingBytes)

    /// `max_pending_bytes` holds two of the largest POSTs: with less, a large POST would be taken
    /// only when none waits, and under a steady flow of small ones be answered 503 until Meta gave up.
    static func check(_ pipeline: PipelineDefinition) -> [Diagnostic] {
        let source = pipeline.source
        let (body, pending) = (source.settings[maxBodyBytes], source.settings[maxPendingBytes])
        guard pending < 2 * body else { return [] }
        return [.error(at: source.settings.location(of: maxPendingBytes) ?? source.location,
                       "`max_pending_bytes` of source `whatsapp_webhook` (\(pending)) must hold two of the largest POSTs (2 × `max_body_bytes` = \(2 * body)): a large POST would otherwise wait behind every small one")]
    }

    var port: Int
    var path: String
    var verifyToken: String
    var appSecret: String
    var maxBodyBytes: Int
    var maxPendingBytes: Int

    init(_ settings: Settings) {
        port = settings[Self.port]
        path = settings[Self.path]
        verifyToken = settings[Self.verifyToken]
        appSecret = settings[Self.appSecret]
        maxBodyBytes = settings[Self.maxBodyBytes]
        maxPendingBytes = settings[Self.maxPendingBytes]
    }
}

extension SourcePlugin {
    /// The `whatsapp_webhook` source plugin.
    public static let whatsAppWebhook = SourcePlugin(
        name: "whatsapp_webhook",
        summary: "Meta's WhatsApp webhook over HTTP (Hummingbird): verification GET, signed POSTs answered 200 once their events are confirmed",
        settings: WebhookSettings.schema,
        check: WebhookSettings.check,
        admission: WebhookAdmission.admission,
        make: { context in WebhookSource(settings: WebhookSettings(context.settings), worker: context.worker, logger: context.logger) }
    )
}
