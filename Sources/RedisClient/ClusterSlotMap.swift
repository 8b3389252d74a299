/// Which master serves each hash slot, as `CLUSTER SLOTS` answered.
struct ClusterSlotMap: Sendable, Equatable {
    /// The masters, each once.
    private(set) var masters: [RedisAddress] = []
    /// Per slot, an index into `masters` (-1: no master known).
    private var owners = [Int16](repeating: -1, count: ClusterSlot.count)

    init() {}

    /// The map in a `CLUSTER SLOTS` answer from `node` (a master's empty host means `node`'s host).
    init?(_ reply: RedisReply, from node: RedisAddress) {
        guard case .array(let ranges) = reply, !ranges.isEmpty else { return nil }
        for range in ranges {
            guard case .array(let parts) = range, parts.count >= 3, let first = parts[0].integer, let last = parts[1].integer,
                  case .array(let master) = parts[2], master.count >= 2, let port = master[1].integer, RedisAddress.ports.contains(port),
                  first >= 0, last < ClusterSlot.count, first <= last else { return nil }
            let host = master[0].string.flatMap { $0.isEmpty || $0 == "?" ? nil : $0 } ?? node.host
            let index = assign(RedisAddress(host: host, port: port))
            for slot in first...last { owners[slot] = Int16(index) }
        }
    }

    /// The master serving `slot`, if known.
    func master(of slot: Int) -> RedisAddress? {
        let index = Int(owners[slot])
        return index >= 0 ? masters[index] : nil
    }

    /// Records that `slot` moved to `node` (a `MOVED` answer).
    mutating func move(_ slot: Int, to node: RedisAddress) {
        owners[slot] = Int16(assign(node))
    }

    private mutating func assign(_ node: RedisAddress) -> Int {
        if let index = masters.firstIndex(of: node) { return index }
        masters.append(node)
        return masters.count - 1
    }
}
