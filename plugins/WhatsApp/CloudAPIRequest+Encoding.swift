import PipelineKit

extension CloudAPIRequest {
    /// The request body: compact JSON, members in sorted order at every level (stable bytes).
    ///
    /// Written member by member with `JSONWriter`: `JSONEncoder` with sorted keys was the
    /// single largest cost of the transform step.
    public func encoded() -> [UInt8] {
        var writer = JSONWriter(capacity: 320)
        writer.beginObject()
        write("audio", audio, to: &writer)
        writer.member("biz_opaque_callback_data", biz_opaque_callback_data)
        if let context {
            writer.key("context")
            writer.beginObject()
            writer.member("message_id", context.message_id)
            writer.endObject()
        }
        write("contacts", contacts, to: &writer)
        write("document", document, to: &writer)
        write("image", image, to: &writer)
        write("interactive", interactive, to: &writer)
        if let location {
            writer.key("location")
            writer.beginObject()
            writer.member("address", location.address)
            writer.key("latitude")
            writer.number(location.latitude)
            writer.key("longitude")
            writer.number(location.longitude)
            writer.member("name", location.name)
            writer.endObject()
        }
        writer.member("messaging_product", messaging_product)
        if let reaction {
            writer.key("reaction")
            writer.beginObject()
            writer.member("emoji", reaction.emoji)
            writer.member("message_id", reaction.message_id)
            writer.endObject()
        }
        writer.member("recipient_type", recipient_type)
        write("sticker", sticker, to: &writer)
        if let template {
            writer.key("template")
            writer.beginObject()
            write("components", template.components, to: &writer)
            writer.key("language")
            writer.beginObject()
            writer.member("code", template.language.code)
            writer.endObject()
            writer.member("name", template.name)
            writer.endObject()
        }
        if let text {
            writer.key("text")
            writer.beginObject()
            writer.member("body", text.body)
            writer.key("preview_url")
            writer.bool(text.preview_url)
            writer.endObject()
        }
        writer.member("to", to)
        writer.member("type", type)
        write("video", video, to: &writer)
        writer.endObject()
        return writer.bytes
    }

    private func write(_ name: String, _ media: Media?, to writer: inout JSONWriter) {
        guard let media else { return }
        writer.key(name)
        writer.beginObject()
        writer.member("caption", media.caption)
        writer.member("filename", media.filename)
        writer.member("id", media.id)
        writer.member("link", media.link)
        writer.endObject()
    }

    private func write(_ name: String, _ value: JSONValue?, to writer: inout JSONWriter) {
        guard let value else { return }
        writer.key(name)
        writer.value(value)
    }
}
