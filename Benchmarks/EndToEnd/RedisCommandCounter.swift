import RedisClient

/// Redis's own count of the commands it ran (`INFO commandstats`), to tell commands per message.
struct RedisCommandCounter {
    let client: RedisClient

    init(port: Int) {
        client = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: port, poolSize: 1))
    }

    /// Calls of every command so far, and of Lua scripts (`EVALSHA`, `EVAL`).
    func calls() async throws -> (total: Int, scripts: Int) {
        let text = try await client.checked(["INFO", "commandstats"]).string ?? ""
        var total = 0
        var scripts = 0
        for line in text.split(whereSeparator: \.isNewline) where line.hasPrefix("cmdstat_") {
            // cmdstat_evalsha:calls=123,usec=…
            guard let name = line.split(separator: ":").first, let calls = line.split(separator: "calls=").dropFirst().first?.split(separator: ",").first.flatMap({ Int($0) }) else { continue }
            if name == "cmdstat_info" { continue }
            total += calls
            if name == "cmdstat_evalsha" || name == "cmdstat_eval" { scripts += calls }
        }
        return (total, scripts)
    }
}
