import Foundation
import PipelineKit

/// Checks a message against schema v1 and the Cloud API's limits, collecting
/// every problem with the field it concerns (`text.body: 5000 characters, at most 4096`).
public struct MessageValidator: Sendable {
    /// Bodies larger than this are refused before any field is read.
    public var maxBytes: Int

    public init(maxBytes: Int = 1 << 20) {
        self.maxBytes = maxBytes
    }

    /// Message types of schema v1.
    public static let types = ["text", "template", "image", "video", "audio", "document", "sticker", "location", "contacts", "interactive", "reaction"]

    /// Validates `message`; throws a `StepFailure` of kind `.invalid` listing every problem.
    public func validate(_ message: Message) throws(StepFailure) -> OutboundMessage {
        guard message.body.count <= maxBytes else {
            throw StepFailure(.invalid, "body is \(message.body.count) bytes, at most \(maxBytes)")
        }
        if let parseError = message.parseError { throw StepFailure(.invalid, parseError) }
        guard case .object(let object)? = message.payload else {
            throw StepFailure(.invalid, "body must be a JSON object, found \(message.payload?.kindName ?? "nothing")")
        }
        var problems = Problems()
        let result = check(object, &problems)
        guard problems.list.isEmpty, let result else {
            throw StepFailure(.invalid, problems.list.joined(separator: "; "))
        }
        return result
    }

    private func check(_ object: [String: JSONValue], _ problems: inout Problems) -> OutboundMessage? {
        let internalID = problems.requiredString(object, "internalId")
        if let internalID {
            if internalID.isEmpty || internalID.count > 128 {
                problems.add("internalId: \(internalID.count) characters, must be 1–128")
            } else if !internalID.unicodeScalars.allSatisfy(Self.isIDCharacter) {
                problems.add("internalId: only letters, digits and . _ : - are allowed")
            }
        }
        var to: String?
        if let raw = problems.requiredString(object, "to") {
            to = Self.normalisePhone(raw)
            if to == nil { problems.add("to: not an E.164 number (optional +, then 8–15 digits)") }
        }
        let replyTo = problems.optionalString(object, "replyTo", maxLength: 256, allowsEmpty: false)
        let phoneNumberID = problems.optionalString(object, "phoneNumberId", maxLength: 64)
        if let phoneNumberID, MapKeys.digits.problem(phoneNumberID) != nil {
            problems.add("phoneNumberId: must be the id of a sender phone number, 1–32 digits 0-9")
        }
        var expiresAt: Date?
        if let value = object["expiresAt"], value != .null {
            if let text = value.stringValue, let date = Self.instant(text) {
                expiresAt = date
            } else {
                problems.add("expiresAt: must be an ISO 8601 instant such as 2026-12-01T10:00:00Z, found \(value.stringValue.map { "\"\($0.prefix(utf8Bytes: 40))\"" } ?? value.kindName)")
            }
        }
        var category: MessageCategory?
        if let value = object["category"], value != .null {
            category = value.stringValue.flatMap(MessageCategory.init(rawValue:))
            if category == nil {
                problems.add("category: must be one of \(MessageCategory.allCases.map(\.rawValue).joined(separator: ", ")), found \(value.stringValue.map { "\"\($0.prefix(utf8Bytes: 40))\"" } ?? value.kindName)")
            }
        }
        if let metadata = object["metadata"], metadata.objectValue == nil, metadata != .null {
            problems.add("metadata: must be an object, found \(metadata.kindName)")
        }
        guard let type = problems.requiredString(object, "type") else { return nil }
        guard Self.types.contains(type) else {
            problems.add("type: \"\(type.prefix(utf8Bytes: 40))\" is not one of \(Self.types.joined(separator: ", "))")
            return nil
        }
        var content = ContentValidator(problems: problems)
        content.validate(type: type, object: object)
        problems = content.problems
        guard let internalID, let to, let body = content.result else { return nil }
        return OutboundMessage(internalID: internalID, to: to, type: type, content: body, replyTo: replyTo, phoneNumberID: phoneNumberID, expiresAt: expiresAt, category: category)
    }

    /// An ISO 8601 instant with a zone (`Z` or an offset), with or without fractional seconds.
    static func instant(_ text: String) -> Date? {
        let base = Date.ISO8601FormatStyle.iso8601.year().month().day().dateSeparator(.dash).time(includingFractionalSeconds: false).timeSeparator(.colon).timeZone(separator: .colon)
        return (try? Date(text, strategy: base)) ?? (try? Date(text, strategy: base.time(includingFractionalSeconds: true)))
            ?? (try? Date(text, strategy: .iso8601))
    }

    static func isIDCharacter(_ scalar: Unicode.Scalar) -> Bool {
        ("A"..."Z").contains(scalar) || ("a"..."z").contains(scalar) || ("0"..."9").contains(scalar) || "._:-".unicodeScalars.contains(scalar)
    }

    /// `+55 (11) 98765-4321` → `+5511987654321`; nil when not 8–15 digits after an optional `+`.
    public static func normalisePhone(_ raw: String) -> String? {
        let stripped = raw.filter { $0 != " " && $0 != "-" && $0 != "(" && $0 != ")" }
        let digits = stripped.hasPrefix("+") ? stripped.dropFirst() : Substring(stripped)
        guard (8...15).contains(digits.count), digits.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }) else { return nil }
        return "+" + digits
    }
}
