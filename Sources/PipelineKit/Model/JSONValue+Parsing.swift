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

    /// Converts what `JSONSerialization` returns.
    private init(foundationObject object: Any) {
        switch object {
        case let text as String:
            self = .string(text)
        case let members as [String: Any]:
            self = .object(members.mapValues(JSONValue.init(foundationObject:)))
        case let items as [Any]:
            self = .array(items.map(JSONValue.init(foundationObject:)))
        case let number as NSNumber:
            // JSONSerialization returns booleans as NSNumbers of Objective-C type `c` (char).
            self = number.objCType.pointee == CChar(UInt8(ascii: "c")) ? .bool(number.boolValue) : .number(number.doubleValue)
        default:
            self = .null
        }
    }
}
