import PipelineKit
import RedisClient

extension RedisStore {
    /// Runs `body` on groups of `items` whose keys a Lua script may touch together: all of them on a
    /// single server, those whose keys share a hash slot on a Redis Cluster (SPEC 17: a script's
    /// keys share a slot; work that spans slots is done one slot at a time), the groups concurrently.
    /// `body` answers one value per item of its group; the answers come back in the items' order.
    public func perSlot<Item: Sendable, Answer: Sendable>(
        _ items: [Item], key: (Item) -> String,
        _ body: @escaping @Sendable ([Item]) async throws(StoreUnavailable) -> [Answer]
    ) async throws(StoreUnavailable) -> [Answer] {
        guard client.isCluster, items.count > 1 else { return try await body(items) }
        var groups: [Int: [Int]] = [:]
        for (index, item) in items.enumerated() { groups[ClusterSlot.of(key(item)), default: []].append(index) }
        if groups.count == 1 { return try await body(items) }
        let answers = await withTaskGroup(of: ([Int], Result<[Answer], StoreUnavailable>).self) { group in
            for indices in groups.values {
                let members = indices.map { items[$0] }
                group.addTask {
                    do throws(StoreUnavailable) {
                        return (indices, .success(try await body(members)))
                    } catch {
                        return (indices, .failure(error))
                    }
                }
            }
            var collected: [([Int], Result<[Answer], StoreUnavailable>)] = []
            for await answer in group { collected.append(answer) }
            return collected
        }
        var ordered = [Answer?](repeating: nil, count: items.count)
        for (indices, result) in answers {
            let values = try result.get()
            for (index, value) in zip(indices, values) { ordered[index] = value }
        }
        return try ordered.map { answer throws(StoreUnavailable) in
            guard let answer else { throw StoreUnavailable("a script answered fewer values than it was given items") }
            return answer
        }
    }
}
