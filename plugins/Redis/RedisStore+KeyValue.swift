import PipelineKit
import RedisClient

/// The key-value capability on Redis: plain commands, one round trip each.
extension RedisStore: KeyValueStore {
    public func set(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) {
        _ = try await perform { () async throws(RedisError) in
            try await client.checked(["SET", key, value, "EX", Self.seconds(ttl)])
        }
    }

    public func setIfAbsent(_ key: String, _ value: String, ttl: Duration) async throws(StoreUnavailable) -> Bool {
        try await perform { () async throws(RedisError) -> Bool in
            try await client.checked(["SET", key, value, "NX", "EX", Self.seconds(ttl)]).string != nil
        }
    }

    public func read(_ key: String) async throws(StoreUnavailable) -> (value: String, ttl: Duration?)? {
        try await perform { () async throws(RedisError) -> (value: String, ttl: Duration?)? in
            guard let value = try await client.checked(["GET", key]).string else { return nil }
            let ttl = try await client.checked(["TTL", key]).integer
            return (value, ttl.flatMap { $0 >= 0 ? .seconds($0) : nil })
        }
    }

    public func delete(_ key: String) async throws(StoreUnavailable) -> Bool {
        try await perform { () async throws(RedisError) in
            try await client.checked(["DEL", key]).integer == 1
        }
    }

    public func addMembers(_ members: [String], to key: String) async throws(StoreUnavailable) -> Int {
        guard !members.isEmpty else { return 0 }
        return try await perform { () async throws(RedisError) in
            try await client.checked(["SADD", key] + members).integer ?? 0
        }
    }

    public func removeMembers(_ members: [String], from key: String) async throws(StoreUnavailable) -> Int {
        guard !members.isEmpty else { return 0 }
        return try await perform { () async throws(RedisError) in
            try await client.checked(["SREM", key] + members).integer ?? 0
        }
    }

    /// One `SISMEMBER` per key and member, sent together (the client pipelines them on one round trip;
    /// `SMISMEMBER` would need Redis 6.2).
    public func holdsAny(of members: [String], ofEach keys: [String]) async throws(StoreUnavailable) -> [Bool] {
        let client = self.client
        return try await perform { () async throws(RedisError) -> [Bool] in
            let answers = await withTaskGroup(of: (Int, Result<Bool, RedisError>).self) { group in
                for (index, key) in keys.enumerated() {
                    for member in members {
                        group.addTask {
                            do throws(RedisError) {
                                return (index, .success(try await client.checked(["SISMEMBER", key, member]).integer == 1))
                            } catch {
                                return (index, .failure(error))
                            }
                        }
                    }
                }
                // Per key: held if any answer says so, else the first failure, else not held.
                var answers = [Result<Bool, RedisError>](repeating: .success(false), count: keys.count)
                for await (index, answer) in group {
                    switch (answers[index], answer) {
                    case (.success(true), _): continue
                    case (_, .success(true)), (.success(false), .failure): answers[index] = answer
                    default: continue
                    }
                }
                return answers
            }
            return try answers.map { answer throws(RedisError) in try answer.get() }
        }
    }

    public func members(of key: String) async throws(StoreUnavailable) -> [String] {
        try await scan(["SSCAN", key])
    }

    public func keys(prefix: String) async throws(StoreUnavailable) -> [String] {
        let pattern = prefix.reduce(into: "") { pattern, character in
            if "*?[]\\".contains(character) { pattern.append("\\") }
            pattern.append(character)
        } + "*"
        return try await scan(["SCAN"], match: pattern)
    }

    /// Every item a `SCAN`-like command pages through (no long blocking call), sorted, each once.
    /// `SCAN` itself goes through every master of a cluster (`SSCAN` follows its key).
    private func scan(_ command: [String], match pattern: String? = nil) async throws(StoreUnavailable) -> [String] {
        let masters = command == ["SCAN"] && client.isCluster ? client.masters().map(Optional.some) : [nil]
        if masters.isEmpty { throw StoreUnavailable("no master of the Redis Cluster is known yet: its keys cannot be listed") }
        var items: Set<String> = []
        for master in masters { items.formUnion(try await scan(command, match: pattern, on: master)) }
        return items.sorted()
    }

    private func scan(_ command: [String], match pattern: String?, on master: RedisAddress?) async throws(StoreUnavailable) -> Set<String> {
        try await perform { () async throws(RedisError) -> Set<String> in
            var cursor = "0"
            var items: Set<String> = []
            repeat {
                let arguments = command + [cursor] + (pattern.map { ["MATCH", $0] } ?? []) + ["COUNT", "1000"]
                let page: RedisReply
                if let master { page = try await client.send(arguments, to: master) } else { page = try await client.send(arguments) }
                if case .error(let message) = page { throw .server(message) }
                guard case .array(let parts) = page, parts.count == 2, let next = parts[0].string, case .array(let found) = parts[1] else {
                    throw .server("unexpected \(command[0]) answer")
                }
                items.formUnion(found.compactMap(\.string))
                cursor = next
            } while cursor != "0"
            return items
        }
    }
}
