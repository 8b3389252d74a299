import Foundation

/// The Redis Cluster of `scripts/services`' cluster profile, as its nodes describe it.
public enum ClusterNodes {
    /// Runs redis-cli against one node.
    public static func cli(_ port: Int, _ arguments: [String]) throws -> String {
        try TestServices.run("/usr/bin/redis-cli", ["-p", String(port)] + arguments).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Port and node id of each master that is not failing, as a live seed says.
    public static func masters() throws -> [(port: Int, id: String)] {
        for seed in TestServices.redisCluster {
            guard let nodes = try? cli(seed.port, ["cluster", "nodes"]), !nodes.isEmpty, !nodes.contains("Could not connect") else { continue }
            return nodes.split(separator: "\n").compactMap { line in
                let fields = line.split(separator: " ")
                guard fields.count > 2, fields[2].contains("master"), !fields[2].contains("fail"),
                      let port = fields[1].split(separator: "@").first?.split(separator: ":").last.flatMap({ Int($0) }) else { return nil }
                return (port, String(fields[0]))
            }
        }
        throw TestFailure("no node of the Redis Cluster answers")
    }
}
