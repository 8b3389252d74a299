import PipelineKit

/// The settings of the `whatsapp_webhook` source, read once.
struct WebhookSettings: Sendable {
    static let schema = SettingsSchema([
        SettingSpec("port", .integer(1...65535), default: .integer(8081), "port the webhook listens on"),
        SettingSpec("path", .string, default: .string("/webhooks/whatsapp"), "path of the callback URL registered with Meta"),
        SettingSpec("verify_token", .string, required: true, secrecy: .secret, "the token Meta's verification GET must carry"),
        SettingSpec("app_secret", .string, required: true, secrecy: .secret, "the app secret that signs each POST (X-Hub-Signature-256)"),
        SettingSpec("max_body_bytes", .integer(1024...16_777_216), default: .integer(1 << 20), "larger POSTs are refused with 413"),
    ])

    var port: Int
    var path: String
    var verifyToken: String
    var appSecret: String
    var maxBodyBytes: Int

    init(_ settings: Settings) throws {
        port = try settings.integer("port")
        path = try settings.string("path")
        verifyToken = try settings.string("verify_token")
        appSecret = try settings.string("app_secret")
        maxBodyBytes = try settings.integer("max_body_bytes")
    }
}

extension SourcePlugin {
    /// The `whatsapp_webhook` source plugin.
    public static let whatsAppWebhook = SourcePlugin(
        name: "whatsapp_webhook",
        summary: "Meta's WhatsApp webhook over HTTP (Hummingbird): verification GET, signed POSTs answered 200 once their events are confirmed",
        settings: WebhookSettings.schema,
        admission: WebhookAdmission.admission,
        make: { context in WebhookSource(settings: try WebhookSettings(context.settings), worker: context.worker, logger: context.logger) }
    )
}
