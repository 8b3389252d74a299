import Logging
import PipelineKit

/// Sends prepared requests to the Cloud API (or a stand-in) and returns the `wamid`.
public protocol CloudAPISender: Resource {
    /// Sends `request`; throws a classified `StepFailure` on any failure.
    /// `attempt` is the message's delivery number (for the pair-rate-limit wait).
    func send(_ request: PreparedRequest, attempt: Int, logger: Logger) async throws(StepFailure) -> String
}

/// The `whatsapp_cloud_api` resource's settings, shared by the real client and the stand-in.
public enum CloudAPISettings {
    public static let schema = SettingsSchema([
        SettingSpec("base_url", .string, default: .string("https://graph.facebook.com"), "Cloud API base URL"),
        SettingSpec("api_version", .string, default: .string("v24.0"), "Graph API version (path segment)"),
        SettingSpec("phone_number_id", .string, default: .string(""), "sender phone number id; a message's `phoneNumberId` overrides it"),
        SettingSpec("access_token", .string, required: true, secrecy: .secret, "bearer token; never logged"),
        SettingSpec("timeout", .duration, default: .duration(.seconds(10)), "time limit of one request, connection included"),
        SettingSpec("max_connections", .integer(1...1024), default: .integer(64), "keep-alive connections to the API at most"),
        SettingSpec("dry_run", .boolean, default: .boolean(false), "log each request and answer with a synthetic wamid, without any network"),
    ])
}
