import CRabbitMQ
import Foundation

/// Copies field tables and properties between librabbitmq's C structs and Swift values.
///
/// C memory made for a publish lives in a `CArena` that the caller frees after the call.
final class CArena {
    private var blocks: [UnsafeMutableRawPointer] = []

    deinit {
        blocks.forEach { free($0) }
    }

    /// Bytes copied into arena memory as `amqp_bytes_t`.
    func bytes(_ source: [UInt8]) -> amqp_bytes_t {
        guard !source.isEmpty, let memory = malloc(source.count) else { return amqp_bytes_t(len: 0, bytes: nil) }
        blocks.append(memory)
        source.withUnsafeBytes { buffer in
            if let base = buffer.baseAddress { memory.copyMemory(from: base, byteCount: source.count) }
        }
        return amqp_bytes_t(len: source.count, bytes: memory)
    }

    func bytes(_ text: String) -> amqp_bytes_t { bytes(Array(text.utf8)) }

    func allocate<T>(_ type: T.Type, count: Int) -> UnsafeMutablePointer<T> {
        guard let memory = calloc(max(count, 1), MemoryLayout<T>.stride) else { fatalError("out of memory allocating an AMQP field table") }
        blocks.append(memory)
        return memory.bindMemory(to: T.self, capacity: max(count, 1))
    }

    func table(_ table: AMQPTable) -> amqp_table_t {
        guard !table.entries.isEmpty else { return amqp_table_t(num_entries: 0, entries: nil) }
        let entries = allocate(amqp_table_entry_t.self, count: table.entries.count)
        for (index, entry) in table.entries.enumerated() {
            entries[index].key = bytes(entry.key)
            entries[index].value = field(entry.value)
        }
        return amqp_table_t(num_entries: Int32(table.entries.count), entries: entries)
    }

    func field(_ value: AMQPValue) -> amqp_field_value_t {
        var field = amqp_field_value_t()
        switch value {
        case .string(let text):
            field.kind = UInt8(AMQP_FIELD_KIND_UTF8.rawValue)
            field.value.bytes = bytes(text)
        case .bytes(let data):
            field.kind = UInt8(AMQP_FIELD_KIND_BYTES.rawValue)
            field.value.bytes = bytes(data)
        case .bool(let flag):
            field.kind = UInt8(AMQP_FIELD_KIND_BOOLEAN.rawValue)
            field.value.boolean = flag ? 1 : 0
        case .int(let number):
            field.kind = UInt8(AMQP_FIELD_KIND_I64.rawValue)
            field.value.i64 = number
        case .double(let number):
            field.kind = UInt8(AMQP_FIELD_KIND_F64.rawValue)
            field.value.f64 = number
        case .timestamp(let seconds):
            field.kind = UInt8(AMQP_FIELD_KIND_TIMESTAMP.rawValue)
            field.value.u64 = seconds
        case .table(let nested):
            field.kind = UInt8(AMQP_FIELD_KIND_TABLE.rawValue)
            field.value.table = table(nested)
        case .array(let items):
            field.kind = UInt8(AMQP_FIELD_KIND_ARRAY.rawValue)
            let entries = allocate(amqp_field_value_t.self, count: items.count)
            for (index, item) in items.enumerated() { entries[index] = self.field(item) }
            field.value.array = amqp_array_t(num_entries: Int32(items.count), entries: entries)
        case .void:
            field.kind = UInt8(AMQP_FIELD_KIND_VOID.rawValue)
        }
        return field
    }

    func properties(_ properties: AMQPProperties) -> amqp_basic_properties_t {
        var result = amqp_basic_properties_t()
        var flags: UInt32 = 0
        func set(_ value: String?, _ flag: Int32, _ assign: (amqp_bytes_t) -> Void) {
            guard let value else { return }
            assign(bytes(value))
            flags |= UInt32(flag)
        }
        set(properties.contentType, AMQP_BASIC_CONTENT_TYPE_FLAG) { result.content_type = $0 }
        set(properties.contentEncoding, AMQP_BASIC_CONTENT_ENCODING_FLAG) { result.content_encoding = $0 }
        set(properties.correlationID, AMQP_BASIC_CORRELATION_ID_FLAG) { result.correlation_id = $0 }
        set(properties.replyTo, AMQP_BASIC_REPLY_TO_FLAG) { result.reply_to = $0 }
        set(properties.expiration, AMQP_BASIC_EXPIRATION_FLAG) { result.expiration = $0 }
        set(properties.messageID, AMQP_BASIC_MESSAGE_ID_FLAG) { result.message_id = $0 }
        set(properties.type, AMQP_BASIC_TYPE_FLAG) { result.type = $0 }
        set(properties.userID, AMQP_BASIC_USER_ID_FLAG) { result.user_id = $0 }
        set(properties.appID, AMQP_BASIC_APP_ID_FLAG) { result.app_id = $0 }
        if !properties.headers.entries.isEmpty {
            result.headers = table(properties.headers)
            flags |= UInt32(AMQP_BASIC_HEADERS_FLAG)
        }
        if let mode = properties.deliveryMode {
            result.delivery_mode = mode
            flags |= UInt32(AMQP_BASIC_DELIVERY_MODE_FLAG)
        }
        if let priority = properties.priority {
            result.priority = priority
            flags |= UInt32(AMQP_BASIC_PRIORITY_FLAG)
        }
        if let timestamp = properties.timestamp {
            result.timestamp = timestamp
            flags |= UInt32(AMQP_BASIC_TIMESTAMP_FLAG)
        }
        result._flags = flags
        return result
    }
}

/// Reading C values into Swift.
enum AMQPDecode {
    static func bytes(_ value: amqp_bytes_t) -> [UInt8] {
        guard value.len > 0, let pointer = value.bytes else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: value.len))
    }

    static func string(_ value: amqp_bytes_t) -> String {
        String(decoding: bytes(value), as: UTF8.self)
    }

    static func table(_ table: amqp_table_t) -> AMQPTable {
        guard table.num_entries > 0, let entries = table.entries else { return AMQPTable() }
        var result = AMQPTable()
        for index in 0..<Int(table.num_entries) {
            if let value = field(entries[index].value) {
                result.entries.append((string(entries[index].key), value))
            }
        }
        return result
    }

    static func field(_ field: amqp_field_value_t) -> AMQPValue? {
        switch Int(field.kind) {
        case Int(AMQP_FIELD_KIND_UTF8.rawValue): return .string(string(field.value.bytes))
        case Int(AMQP_FIELD_KIND_BYTES.rawValue): return .bytes(bytes(field.value.bytes))
        case Int(AMQP_FIELD_KIND_BOOLEAN.rawValue): return .bool(field.value.boolean != 0)
        case Int(AMQP_FIELD_KIND_I8.rawValue): return .int(Int64(field.value.i8))
        case Int(AMQP_FIELD_KIND_U8.rawValue): return .int(Int64(field.value.u8))
        case Int(AMQP_FIELD_KIND_I16.rawValue): return .int(Int64(field.value.i16))
        case Int(AMQP_FIELD_KIND_U16.rawValue): return .int(Int64(field.value.u16))
        case Int(AMQP_FIELD_KIND_I32.rawValue): return .int(Int64(field.value.i32))
        case Int(AMQP_FIELD_KIND_U32.rawValue): return .int(Int64(field.value.u32))
        case Int(AMQP_FIELD_KIND_I64.rawValue): return .int(field.value.i64)
        case Int(AMQP_FIELD_KIND_U64.rawValue): return .int(Int64(clamping: field.value.u64))
        case Int(AMQP_FIELD_KIND_F32.rawValue): return .double(Double(field.value.f32))
        case Int(AMQP_FIELD_KIND_F64.rawValue): return .double(field.value.f64)
        case Int(AMQP_FIELD_KIND_TIMESTAMP.rawValue): return .timestamp(field.value.u64)
        case Int(AMQP_FIELD_KIND_TABLE.rawValue): return .table(table(field.value.table))
        case Int(AMQP_FIELD_KIND_VOID.rawValue): return .void
        case Int(AMQP_FIELD_KIND_ARRAY.rawValue):
            let array = field.value.array
            guard array.num_entries > 0, let entries = array.entries else { return .array([]) }
            return .array((0..<Int(array.num_entries)).compactMap { self.field(entries[$0]) })
        default:
            return nil
        }
    }

    static func properties(_ raw: amqp_basic_properties_t) -> AMQPProperties {
        let flags = raw._flags
        func has(_ flag: Int32) -> Bool { flags & UInt32(flag) != 0 }
        func text(_ flag: Int32, _ value: amqp_bytes_t) -> String? { has(flag) ? string(value) : nil }
        return AMQPProperties(
            contentType: text(AMQP_BASIC_CONTENT_TYPE_FLAG, raw.content_type),
            contentEncoding: text(AMQP_BASIC_CONTENT_ENCODING_FLAG, raw.content_encoding),
            headers: has(AMQP_BASIC_HEADERS_FLAG) ? table(raw.headers) : AMQPTable(),
            deliveryMode: has(AMQP_BASIC_DELIVERY_MODE_FLAG) ? raw.delivery_mode : nil,
            priority: has(AMQP_BASIC_PRIORITY_FLAG) ? raw.priority : nil,
            correlationID: text(AMQP_BASIC_CORRELATION_ID_FLAG, raw.correlation_id),
            replyTo: text(AMQP_BASIC_REPLY_TO_FLAG, raw.reply_to),
            expiration: text(AMQP_BASIC_EXPIRATION_FLAG, raw.expiration),
            messageID: text(AMQP_BASIC_MESSAGE_ID_FLAG, raw.message_id),
            timestamp: has(AMQP_BASIC_TIMESTAMP_FLAG) ? raw.timestamp : nil,
            type: text(AMQP_BASIC_TYPE_FLAG, raw.type),
            userID: text(AMQP_BASIC_USER_ID_FLAG, raw.user_id),
            appID: text(AMQP_BASIC_APP_ID_FLAG, raw.app_id))
    }
}
