import PipelineKit

/// Validates the type-specific part of a message (`text`, `template`, `media`, …).
struct ContentValidator {
    var problems: Problems
    var result: OutboundMessage.Content?

    init(problems: Problems) {
        self.problems = problems
    }

    mutating func validate(type: String, object: [String: JSONValue]) {
        switch type {
        case "text": result = text(object)
        case "template": result = template(object)
        case "location": result = location(object)
        case "contacts": result = contacts(object)
        case "interactive": result = interactive(object)
        case "reaction": result = reaction(object)
        default:
            if let kind = OutboundMessage.MediaKind(rawValue: type) { result = media(kind, object) }
        }
    }

    private mutating func text(_ object: [String: JSONValue]) -> OutboundMessage.Content? {
        guard let text = problems.requiredObject(object, "text") else { return nil }
        guard let body = problems.requiredString(text, "body", path: "text.body") else { return nil }
        problems.limit(body, "text.body", 1...4096)
        var preview = false
        if let value = text["previewUrl"], value != .null {
            guard let flag = value.boolValue else {
                problems.add("text.previewUrl: must be true or false, found \(value.kindName)")
                return nil
            }
            preview = flag
        }
        return .text(body: body, previewURL: preview)
    }

    private mutating func template(_ object: [String: JSONValue]) -> OutboundMessage.Content? {
        guard let template = problems.requiredObject(object, "template") else { return nil }
        let name = problems.requiredString(template, "name", path: "template.name")
        if let name { problems.limit(name, "template.name", 1...512) }
        let language = problems.requiredString(template, "language", path: "template.language")
        // ASCII letters and `_`, by bytes: a letter with combining marks counts as one character, and the code
        // becomes a store key; Meta's codes have no `-` (en-US is refused with 132001, after a request).
        if let language, !(2...15).contains(language.utf8.count)
            || !language.utf8.allSatisfy({ (0x61...0x7A).contains($0 | 0x20) || $0 == UInt8(ascii: "_") }) {
            problems.add("template.language: \"\(language.prefix(utf8Bytes: 20))\" is not a language code such as en_US")
        }
        var components: JSONValue?
        if let value = template["components"], value != .null {
            guard value.arrayValue != nil else {
                problems.add("template.components: must be an array, found \(value.kindName)")
                return nil
            }
            components = value
        }
        guard let name, let language else { return nil }
        return .template(name: name, languageCode: language, components: components)
    }

    private mutating func media(_ kind: OutboundMessage.MediaKind, _ object: [String: JSONValue]) -> OutboundMessage.Content? {
        guard let media = problems.requiredObject(object, "media") else { return nil }
        let id = problems.optionalString(media, "id", path: "media.id", maxLength: 256, allowsEmpty: false)
        let link = problems.optionalString(media, "link", path: "media.link", maxLength: 2048)
        if (id == nil) == (link == nil) { problems.add("media: give exactly one of id, link") }
        // (A URL's scheme is case-insensitive: HTTPS://… is an https URL.)
        if let link, case let scheme = link.prefix(8).lowercased(), !(scheme.hasPrefix("https://") || scheme.hasPrefix("http://")) {
            problems.add("media.link: must be an http(s) URL")
        }
        let caption = problems.optionalString(media, "caption", path: "media.caption", maxLength: 1024)
        if caption != nil, kind == .audio || kind == .sticker {
            problems.add("media.caption: not allowed for \(kind.rawValue)")
        }
        let filename = problems.optionalString(media, "filename", path: "media.filename", maxLength: 240)
        if filename != nil, kind != .document { problems.add("media.filename: only for document") }
        return .media(kind, id: id, link: link, caption: caption, filename: filename)
    }

    private mutating func location(_ object: [String: JSONValue]) -> OutboundMessage.Content? {
        guard let location = problems.requiredObject(object, "location") else { return nil }
        let latitude = coordinate(location, "latitude", -90...90)
        let longitude = coordinate(location, "longitude", -180...180)
        let name = problems.optionalString(location, "name", path: "location.name", maxLength: 1000)
        let address = problems.optionalString(location, "address", path: "location.address", maxLength: 1000)
        guard let latitude, let longitude else { return nil }
        return .location(latitude: latitude, longitude: longitude, name: name, address: address)
    }

    private mutating func coordinate(_ object: [String: JSONValue], _ key: String, _ range: ClosedRange<Double>) -> Double? {
        guard let value = object[key], value != .null else {
            problems.add("location.\(key): required")
            return nil
        }
        guard let number = value.numberValue, range.contains(number) else {
            problems.add("location.\(key): must be a number in \(Int(range.lowerBound))…\(Int(range.upperBound))")
            return nil
        }
        return number
    }

    private mutating func contacts(_ object: [String: JSONValue]) -> OutboundMessage.Content? {
        guard let value = object["contacts"], value != .null else {
            problems.add("contacts: required")
            return nil
        }
        guard let items = value.arrayValue, !items.isEmpty else {
            problems.add("contacts: must be a non-empty array, found \(value.kindName)")
            return nil
        }
        for (index, item) in items.enumerated() {
            guard let contact = item.objectValue else {
                problems.add("contacts[\(index)]: must be an object, found \(item.kindName)")
                continue
            }
            if contact["name"]?.objectValue?["formatted_name"]?.stringValue == nil {
                problems.add("contacts[\(index)].name.formatted_name: required")
            }
        }
        return .contacts(value)
    }

    private mutating func reaction(_ object: [String: JSONValue]) -> OutboundMessage.Content? {
        guard let reaction = problems.requiredObject(object, "reaction") else { return nil }
        let messageID = problems.requiredString(reaction, "messageId", path: "reaction.messageId")
        if let messageID { problems.limit(messageID, "reaction.messageId", 1...256) }
        let emoji = problems.requiredString(reaction, "emoji", path: "reaction.emoji")
        if let emoji, emoji.count > 1 { problems.add("reaction.emoji: one emoji, or empty to remove a reaction") }
        guard let messageID, let emoji else { return nil }
        return .reaction(messageID: messageID, emoji: emoji)
    }

    private mutating func interactive(_ object: [String: JSONValue]) -> OutboundMessage.Content? {
        guard let interactive = problems.requiredObject(object, "interactive") else { return nil }
        guard let kind = problems.requiredString(interactive, "type", path: "interactive.type") else { return nil }
        if let body = interactive["body"]?.objectValue?["text"]?.stringValue {
            problems.limit(body, "interactive.body.text", 1...1024)
        } else if Self.bodyRequired.contains(kind) || interactive["body"] != nil {
            problems.add("interactive.body.text: required")
        }
        if let footer = interactive["footer"]?.objectValue?["text"]?.stringValue { problems.limit(footer, "interactive.footer.text", 1...60) }
        if let header = interactive["header"]?.objectValue, header["type"]?.stringValue == "text", let text = header["text"]?.stringValue {
            problems.limit(text, "interactive.header.text", 1...60)
        }
        let action = interactive["action"]?.objectValue
        switch kind {
        case "button":
            let buttons = action?["buttons"]?.arrayValue ?? []
            if !(1...3).contains(buttons.count) { problems.add("interactive.action.buttons: \(buttons.count) buttons, must be 1–3") }
            for (index, button) in buttons.enumerated() {
                let reply = button["reply"]?.objectValue
                guard let title = reply?["title"]?.stringValue, let id = reply?["id"]?.stringValue else {
                    problems.add("interactive.action.buttons[\(index)].reply: needs id and title")
                    continue
                }
                problems.limit(title, "interactive.action.buttons[\(index)].reply.title", 1...20)
                problems.limit(id, "interactive.action.buttons[\(index)].reply.id", 1...256)
            }
        case "list":
            if let button = action?["button"]?.stringValue {
                problems.limit(button, "interactive.action.button", 1...20)
            } else {
                problems.add("interactive.action.button: required")
            }
            let sections = action?["sections"]?.arrayValue ?? []
            if !(1...10).contains(sections.count) { problems.add("interactive.action.sections: \(sections.count) sections, must be 1–10") }
            var rowCount = 0
            for (sectionIndex, section) in sections.enumerated() {
                let rows = section["rows"]?.arrayValue ?? []
                rowCount += rows.count
                if let title = section["title"]?.stringValue { problems.limit(title, "interactive.action.sections[\(sectionIndex)].title", 1...24) }
                for (rowIndex, row) in rows.enumerated() {
                    let path = "interactive.action.sections[\(sectionIndex)].rows[\(rowIndex)]"
                    guard let title = row["title"]?.stringValue, row["id"]?.stringValue != nil else {
                        problems.add("\(path): needs id and title")
                        continue
                    }
                    problems.limit(title, "\(path).title", 1...24)
                    if let description = row["description"]?.stringValue { problems.limit(description, "\(path).description", 0...72) }
                }
            }
            if !(1...10).contains(rowCount) { problems.add("interactive.action.sections: \(rowCount) rows in all, must be 1–10") }
        case "cta_url":
            let parameters = action?["parameters"]?.objectValue
            if let text = parameters?["display_text"]?.stringValue {
                problems.limit(text, "interactive.action.parameters.display_text", 1...20)
            } else {
                problems.add("interactive.action.parameters.display_text: required")
            }
            if parameters?["url"]?.stringValue == nil { problems.add("interactive.action.parameters.url: required") }
        default:
            // Passed through as it is (SPEC 4): the kinds Meta adds (`catalog_message`, `carousel`, …) go out, and Meta judges them.
            break
        }
        return .interactive(.object(interactive))
    }

    /// The interactive kinds whose `body.text` is required here (a single `product`'s is optional, and
    /// a `location_request_message` goes without one as before; kinds not listed are passed through unchecked).
    private static let bodyRequired: Set<String> = ["button", "list", "cta_url", "product_list", "flow", "catalog_message"]
}
