import Foundation
import Metrics
import MetricsTestKit

/// A redis-server of a test's own on a free port, which the test may stop and start
/// without disturbing other tests.
public final class ScratchRedis: @unchecked Sendable {
    public let port: Int
    public let password: String?
    /// The port of a master this server replicates from, if it is started as a replica.
    public let replicaOf: Int?
    private let folder: URL

    public init(password: String? = nil, replicaOf: Int? = nil) throws {
        port = freePort()
        self.password = password
        self.replicaOf = replicaOf
        folder = FileManager.default.temporaryDirectory.appendingPathComponent("redis-\(port)-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    }

    public func start() async throws {
        var arguments = ["--bind", "127.0.0.1", "--port", String(port), "--daemonize", "yes", "--dir", folder.path,
                         "--pidfile", folder.appendingPathComponent("redis.pid").path, "--save", "", "--appendonly", "no",
                         "--enable-debug-command", "local"]
        if let password { arguments += ["--requirepass", password] }
        if let replicaOf { arguments += ["--replicaof", "127.0.0.1", String(replicaOf)] }
        let result = try TestServices.run("/usr/bin/redis-server", arguments)
        guard result.status == 0 else { throw TestFailure("redis-server did not start: \(result.output)") }
        try await poll("redis on \(port)") { self.ping() }
    }

    public func stop() async throws {
        var arguments = ["-p", String(port)]
        if let password { arguments += ["-a", password, "--no-auth-warning"] }
        _ = try? TestServices.run("/usr/bin/redis-cli", arguments + ["shutdown", "nosave"])
        try await poll("redis on \(port) to stop") { !self.ping() }
    }

    /// Runs redis-cli with the scratch server's port and password.
    public func cli(_ arguments: [String]) throws -> String {
        var base = ["-p", String(port)]
        if let password { base += ["-a", password, "--no-auth-warning"] }
        return try TestServices.run("/usr/bin/redis-cli", base + arguments).output.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    private func ping() -> Bool {
        (try? cli(["ping"])) == "PONG"
    }
}

/// swift-metrics bootstrapped once per test process with MetricsTestKit, so tests can read counters.
public enum TestMetricsSystem {
    public static let shared: TestMetrics = {
        let metrics = TestMetrics()
        MetricsSystem.bootstrap(metrics)
        return metrics
    }()

    /// The total of a counter, 0 when it was never incremented.
    public static func counter(_ label: String, _ dimensions: [(String, String)] = []) -> Int64 {
        (try? shared.expectCounter(label, dimensions).totalValue) ?? 0
    }
}
