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
        guard let mac = Self.mac(in: header) else { return false }
        return HMAC<SHA256>.isValidAuthenticationCode(mac, authenticating: body, using: key)
    }

    /// Whether `header` has the form of a signature (`sha256=` and 64 hex digits): one that has not
    /// signs no body, and is refused before the body is read.
    static func isWellFormed(_ header: String?) -> Bool {
        mac(in: header) != nil
    }

    /// The MAC a well-formed header spells.
    private static func mac(in header: String?) -> [UInt8]? {
        guard let header, header.hasPrefix("sha256="), let mac = bytes(hex: header.dropFirst(7)), mac.count == SHA256.byteCount else { return nil }
        return mac
    }

    /// The header value for `body` (for tests and the local sample).
    func header(for body: [UInt8]) -> String {
        "sha256=" + HMAC<SHA256>.authenticationCode(for: body, using: key).map { String(format: "%02x", $0) }.joined()
    }

    /// The bytes `hex` spells, two digits each; nil for anything else. Read byte by byte: the header
    /// comes before any check, and a non-ASCII character is one character of several bytes.
    private static func bytes(hex: Substring) -> [UInt8]? {
        let digits = Array(hex.utf8)
        guard digits.count % 2 == 0 else { return nil }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(digits.count / 2)
        for pair in stride(from: 0, to: digits.count, by: 2) {
            guard let high = value(ofHexDigit: digits[pair]), let low = value(ofHexDigit: digits[pair + 1]) else { return nil }
            bytes.append(high << 4 | low)
        }
        return bytes
    }

    private static func value(ofHexDigit digit: UInt8) -> UInt8? {
        switch digit {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
