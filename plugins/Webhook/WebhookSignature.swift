import Crypto
import Foundation

/// `X-Hub-Signature-256: sha256=<hex>`: the HMAC-SHA256 of the raw body with the app secret,
/// compared in constant time.
struct WebhookSignature: Sendable {
    let key: SymmetricKey

    init(appSecret: String) {
        key = SymmetricKey(data: Data(appSecret.utf8))
    }

    /// Whether `header` signs `body`.
    func verifies(_ header: String?, body: [UInt8]) -> Bool {
        guard let header, header.hasPrefix("sha256="), let mac = Self.bytes(hex: header.dropFirst(7)), mac.count == SHA256.byteCount else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key)
    }

    /// The header value for `body` (for tests and the local sample).
    func header(for body: [UInt8]) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: key).map { String(format: "%02x", $0) }.joined()
    }

    private static func bytes(hex: Substring) -> [UInt8]? {
        guard hex.utf8.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(hex.utf8.count / 2)
        var index = hex.startIndex
        while index < hex.endIndex {
            let next = hex.index(index, offsetBy: 2)
            guard let byte = UInt8(hex[index..<next], radix: 16) else { return nil }
            bytes.append(byte)
            index = next
        }
        return bytes
    }
}
