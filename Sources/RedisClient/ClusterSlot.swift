/// Which of Redis Cluster's 16,384 hash slots a key belongs to: CRC16 (XMODEM) of the key, or
/// of its hash tag — the part between the first `{` and the next `}`, when not empty — so that
/// `wamids:{17}` and `statuses:{17}` land in the same slot.
public enum ClusterSlot {
    public static let count = 16_384

    public static func of(_ key: String) -> Int {
        of(Array(key.utf8))
    }

    public static func of(_ key: [UInt8]) -> Int {
        Int(crc16(hashed(key)) % UInt16(count))
    }

    /// The key of a command, the one its slot is judged by; nil for a command without one
    /// (`PING`, `SCRIPT LOAD`, an `EVALSHA` with no keys…).
    static func key(of arguments: [[UInt8]]) -> [UInt8]? {
        guard let name = arguments.first.map({ String(decoding: $0, as: UTF8.self).uppercased() }) else { return nil }
        switch name {
        case "EVAL", "EVALSHA":
            guard arguments.count > 3, let count = Int(String(decoding: arguments[2], as: UTF8.self)), count > 0 else { return nil }
            return arguments[3]
        case "MEMORY", "OBJECT":
            return arguments.count > 2 ? arguments[2] : nil
        case "PING", "INFO", "DBSIZE", "SCRIPT", "TIME", "CLUSTER", "SCAN", "FLUSHDB", "FLUSHALL", "CONFIG", "DEBUG", "ROLE", "AUTH", "SELECT", "ASKING", "READONLY", "COMMAND":
            return nil
        default:
            return arguments.count > 1 ? arguments[1] : nil
        }
    }

    private static func hashed(_ key: [UInt8]) -> ArraySlice<UInt8> {
        guard let open = key.firstIndex(of: UInt8(ascii: "{")),
              let close = key[(open + 1)...].firstIndex(of: UInt8(ascii: "}")), close > open + 1 else { return key[...] }
        return key[(open + 1)..<close]
    }

    private static func crc16(_ bytes: ArraySlice<UInt8>) -> UInt16 {
        var crc: UInt16 = 0
        for byte in bytes {
            crc ^= UInt16(byte) << 8
            for _ in 0..<8 { crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1 }
        }
        return crc
    }
}
