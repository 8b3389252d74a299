import Foundation

extension JSONValue {
    /// Why bytes are not JSON.
    public struct ParseError: Error, Sendable, CustomStringConvertible {
        public let description: String
    }

    /// Parses JSON text (any value at the top level).
    ///
    /// Goes through `JSONSerialization` rather than `JSONDecoder`: decoding an
    /// untyped value through Codable has to try each kind in turn and pays for a
    /// thrown error per wrong guess, about three times the cost per message.
    public init(parsing bytes: [UInt8]) throws(ParseError) {
        let object: Any
        do {
            object = try JSONSerialization.jsonObject(with: Data(bytes), options: [.fragmentsAllowed])
        } catch {
            let detail = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String
            throw ParseError(description: detail ?? "not JSON")
        }
        self.init(foundationObject: object)
    }

    /// Why `bytes` nest objects and arrays deeper than `limit`, or nil: a scan that stops at
    /// the first level too deep, so a hostile body never reaches the parser.
    public static func nestingProblem(in bytes: [UInt8], limit: Int) -> String? {
        var depth = 0
        var inString = false
        var escaped = false
        for byte in bytes {
            if inString {
                if escaped {
                    escaped = false
                } else if byte == UInt8(ascii: "\\") {
                    escaped = true
                } else if byte == UInt8(ascii: "\"") {
                    inString = false
                }
                continue
            }
            switch byte {
            case UInt8(ascii: "\""):
                inString = true
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                depth += 1
                if depth > limit { return "body nests objects and arrays deeper than \(limit) levels" }
            case UInt8(ascii: "]"), UInt8(ascii: "}"):
                depth -= 1
            default:
                continue
            }
        }
        return nil
    }

    /// Converts what `JSONSerialization` returns.
    private init(foundationObject object: Any) {
        switch object {
        case let text as String:
            self = .string(text)
        case let members as [String: Any]:
            self = .object(members.mapValues(JSONValue.init(foundationObject:)))
        case let items as [Any]:
            self = .array(items.map(JSONValue.init(foundationObject:)))
        case let decimal as NSDecimalNumber:
            // Integers beyond 64 bits: their digits, exactly.
            self = .number(JSONNumber(text: decimal.stringValue))
        case let number as NSNumber:
            // JSONSerialization returns booleans as NSNumbers of Objective-C type `c` (char),
            // integers that fit 64 bits as `q` or `Q` (kept exactly), other numbers as `d`.
            switch UInt8(bitPattern: number.objCType.pointee) {
            case UInt8(ascii: "c"): self = .bool(number.boolValue)
            case UInt8(ascii: "q"), UInt8(ascii: "Q"), UInt8(ascii: "i"), UInt8(ascii: "l"): self = .number(JSONNumber(text: number.stringValue))
            default: self = .number(JSONNumber(number.doubleValue))
            }
        default:
            self = .null
        }
    }
}
