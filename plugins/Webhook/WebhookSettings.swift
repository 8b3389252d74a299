import PipelineKit

/// The settings of the `whatsapp_webhook` source, read once.
struct WebhookSettings: Sendable {
    static let port = Setting.integer("port", 1...65535, default: 8081, "port the webhook listens on")
    static let path = Setting.string("path", default: "/webhooks/whatsapp", "path of the callback URL registered with Meta")
    static let verifyToken = Setting.requiredString("verify_token", secrecy: .secret, "the token Meta's verification GET must carry")
    static let appSecret = Setting.requiredString("app_secret", secrecy: .secret, "the app secret that signs each POST (X-Hub-Signature-256)")
    static let maxBodyBytes = Setting.integer("max_body_bytes", 1024...16_777_216, default: 1 << 20, "larger POSTs are refused with 413")

    static let schema = SettingsSchema(port, path, verifyToken, appSecret, maxBodyBytes)

    var port: Int
    var path: String
    var verifyToken: String
    var appSecret: String
    var maxBodyBytes: Int

    init(_ settings: Settings) {
        port = settings[Self.port]
        path = settings[Self.path]
        verifyToken = settings[Self.verifyToken]
        appSecret = settings[Self.appSecret]
        maxBodyBytes = settings[Self.maxBodyBytes]
    }
}

extension SourcePlugin {
    /// The `whatsapp_webhook` source plugin.
    public static let whatsAppWebhook = SourcePlugin(
        name: "whatsapp_webhook",
        summary: "Meta's WhatsApp webhook over HTTP (Hummingbird): verification GET, signed POSTs answered 200 once their events are confirmed",
        settings: WebhookSettings.schema,
        admission: WebhookAdmission.admission,
        make: { context in WebhookSource(settings: WebhookSettings(context.settings), worker: context.worker, logger: context.logger) }
    )
}
