import AsyncHTTPClient
import Crypto
import Foundation
import NIOCore

/// Webhook POSTs as Meta sends them to the statuses pipeline (SPEC 10): signed with the app
/// secret, statuses in `entry[].changes[].value.statuses[]`.
public enum MetaWebhook {
    /// `sha256=<hex HMAC-SHA256 of body>`, the `X-Hub-Signature-256` header's value.
    public static func signature(_ body: String, secret: String) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: Data(body.utf8), using: SymmetricKey(data: Data(secret.utf8))).map { String(format: "%02x", $0) }.joined()
    }

    /// A body with one status per item (`callback`: its `biz_opaque_callback_data`, if any).
    public static func statuses(_ items: [(wamid: String, status: String, callback: String?)], timestamp: Int = 1_800_000_000) -> String {
        let list = items.map { item in
            #"{"id":"\#(item.wamid)","status":"\#(item.status)","timestamp":"\#(timestamp)","recipient_id":"5511987654321"\#(item.callback.map { #","biz_opaque_callback_data":"\#($0)""# } ?? "")}"#
        }
        return #"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[{"field":"messages","value":{"messaging_product":"whatsapp","statuses":[\#(list.joined(separator: ","))]}}]}]}"#
    }

    /// POSTs `body` to `url` with `signature` as the header (none when nil); the HTTP status.
    public static func post(_ body: String, to url: String, signature: String?, timeout: TimeAmount = .seconds(30)) async throws -> Int {
        var request = HTTPClientRequest(url: url)
        request.method = .POST
        request.headers.add(name: "Content-Type", value: "application/json")
        if let signature { request.headers.add(name: "X-Hub-Signature-256", value: signature) }
        request.body = .bytes(ByteBuffer(string: body))
        return Int(try await HTTPClient.shared.execute(request, timeout: timeout).status.code)
    }
}
