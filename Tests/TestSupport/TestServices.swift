import Foundation
import RedisClient
import Synchronization

/// The Redis and RabbitMQ that `scripts/test` started on loopback, and control over them.
public enum TestServices {
    public static var redisPort: Int { Int(ProcessInfo.processInfo.environment["TEST_REDIS_PORT"] ?? "") ?? 16379 }
    public static var rabbitURL: String { ProcessInfo.processInfo.environment["TEST_RABBITMQ_URL"] ?? "amqp://guest:guest@127.0.0.1:25680/%2F" }

    /// The test broker's TLS listener, and the folder of the test certificates `scripts/services` made
    /// (`ca.pem`, `server.pem`/`.key`, `client.pem`/`.key`, and `other-ca.pem`, which signed nothing here).
    public static var rabbitTLSURL: String { environment("TEST_RABBITMQ_TLS_URL") ?? "amqps://guest:guest@localhost:25681/%2F" }
    public static var tlsDirectory: String { environment("TEST_TLS_DIR") ?? repository.appendingPathComponent(".run/test/tls").path }

    /// The `cluster` profile (`scripts/services`, started by `scripts/test`): three RabbitMQ nodes
    /// (comma-separated URLs, node i on the i-th), a Redis master and replica behind three Sentinels.
    public static var clusterURLs: [String] {
        (environment("TEST_CLUSTER_RABBITMQ_URL") ?? "amqp://guest:guest@127.0.0.1:25701/%2F,amqp://guest:guest@127.0.0.1:25702/%2F,amqp://guest:guest@127.0.0.1:25703/%2F")
            .split(separator: ",").map(String.init)
    }
    public static var sentinels: String { environment("TEST_CLUSTER_REDIS_SENTINELS") ?? "127.0.0.1:26479,127.0.0.1:26480,127.0.0.1:26481" }
    public static var sentinelMaster: String { environment("TEST_CLUSTER_REDIS_MASTER_NAME") ?? "outbound" }
    public static var sentinelPassword: String { environment("TEST_CLUSTER_REDIS_SENTINEL_PASSWORD") ?? "sentinel-secret" }
    /// Seeds of the Redis Cluster (three masters, three replicas) of the `cluster` profile.
    public static var redisCluster: [RedisAddress] {
        (environment("TEST_CLUSTER_REDIS_CLUSTER") ?? "127.0.0.1:16501,127.0.0.1:16502,127.0.0.1:16503").split(separator: ",").compactMap { seed in
            let parts = seed.split(separator: ":")
            return parts.count == 2 ? Int(parts[1]).map { RedisAddress(host: String(parts[0]), port: $0) } : nil
        }
    }

    private static func environment(_ name: String) -> String? {
        ProcessInfo.processInfo.environment[name].flatMap { $0.isEmpty ? nil : $0 }
    }

    /// Runs `scripts/services ARGUMENTS` for the cluster profile.
    @discardableResult
    public static func cluster(_ arguments: [String]) throws -> String {
        let result = try run(repository.appendingPathComponent("scripts/services").path, arguments, environment: ["SERVICES_PROFILE": "cluster"])
        guard result.status == 0 else { throw TestFailure("scripts/services \(arguments.joined(separator: " ")) (cluster) failed: \(result.output)") }
        return result.output
    }

    /// The repository root (for scripts and the built executable).
    public static var repository: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    }

    /// The built `outbound-worker` executable: the debug build, or the one `TEST_WORKER_EXECUTABLE`
    /// names (a release build, for figures of the built executable at speed).
    public static var executable: String {
        ProcessInfo.processInfo.environment["TEST_WORKER_EXECUTABLE"] ?? repository.appendingPathComponent(".build/debug/outbound-worker").path
    }

    /// Runs `scripts/services ACTION SERVICE` for the test profile.
    public static func services(_ action: String, _ service: String) throws {
        let result = try run(repository.appendingPathComponent("scripts/services").path, [action, service], environment: ["SERVICES_PROFILE": "test"])
        guard result.status == 0 else { throw TestFailure("scripts/services \(action) \(service) failed: \(result.output)") }
    }

    /// Runs `rabbitmqctl ARGUMENTS` against the test broker (about 0.7 s a call).
    public static func rabbitmqctl(_ arguments: [String]) throws {
        _ = try rabbitmqctlOutput(arguments)
    }

    /// Applies a policy of the test's own to exactly `queue` (a JSON `definition`, e.g.
    /// `{"max-length":0,"overflow":"reject-publish"}`) and returns once the broker shows it applied;
    /// returns its name, for `clearPolicy`.
    public static func applyPolicy(_ definition: String, to queue: String) async throws -> String {
        let name = uniqueName("policy")
        try rabbitmqctl(["set_policy", "--apply-to", "queues", "--priority", "100", name,
                         "^" + NSRegularExpression.escapedPattern(for: queue) + "$", definition])
        try await poll("the policy applied to \(queue)") {
            try rabbitmqctlOutput(["list_queues", "name", "policy", "--quiet", "--no-table-headers"])
                .split(separator: "\n").contains { $0.split(whereSeparator: \.isWhitespace).map(String.init) == [queue, name] }
        }
        return name
    }

    /// A policy definition under which a queue refuses every publish (the broker nacks it).
    public static let refuseEveryPublish = #"{"max-length":0,"overflow":"reject-publish"}"#

    public static func clearPolicy(_ name: String) {
        try? rabbitmqctl(["clear_policy", name])
    }

    /// Runs `rabbitmqctl ARGUMENTS` against the test broker (about 0.7 s a call); returns its output.
    public static func rabbitmqctlOutput(_ arguments: [String]) throws -> String {
        let result = try run(repository.appendingPathComponent("scripts/services").path, ["ctl"] + arguments, environment: ["SERVICES_PROFILE": "test"])
        guard result.status == 0 else { throw TestFailure("rabbitmqctl \(arguments.joined(separator: " ")) failed: \(result.output)") }
        return result.output
    }

    /// Messages in each queue of the test broker, ready and unacknowledged together (`rabbitmqctl
    /// list_queues name messages`, about 0.7 s a call). Unlike `QueueInspector.depth` (ready only), this
    /// counts what consumers hold: 0 means every message of the queue was acknowledged.
    public static func messagesIncludingUnacknowledged() throws -> [String: Int] {
        var counts: [String: Int] = [:]
        for line in try rabbitmqctlOutput(["list_queues", "name", "messages"]).split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            if fields.count == 2, let count = Int(fields[1]) { counts[String(fields[0])] = count }
        }
        return counts
    }

    /// Runs a program to completion; returns its exit status and combined output.
    ///
    /// posix_spawn and waitpid rather than Foundation's Process, whose exit monitoring
    /// misses programs that daemonize (redis-server, rabbitmq-server) on Linux.
    @discardableResult
    public static func run(_ program: String, _ arguments: [String], environment: [String: String] = [:], input: Data? = nil, directory: URL? = nil) throws -> (status: Int32, output: String) {
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("run-\(UUID().uuidString)")
        let outputPath = scratch.path + ".log"
        let inputPath = scratch.path + ".in"
        guard FileManager.default.createFile(atPath: inputPath, contents: input ?? Data()) else { throw TestFailure("cannot create \(inputPath)") }
        defer {
            try? FileManager.default.removeItem(atPath: outputPath)
            try? FileManager.default.removeItem(atPath: inputPath)
        }
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, inputPath, O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, outputPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_adddup2(&actions, 1, 2)
        let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0)=\($1)" }
        // `env -C` sets the working directory (glibc's addchdir is not visible from Swift).
        let argv = (["/usr/bin/env", "-C", (directory ?? repository).path, program] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup($0) } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, envp)
        guard spawned == 0 else { throw TestFailure("cannot run \(program): \(String(cString: strerror(spawned)))") }
        var status: Int32 = 0
        while waitpid(pid, &status, 0) == -1, errno == EINTR {}
        let output = (try? String(contentsOfFile: outputPath, encoding: .utf8)) ?? ""
        let exitStatus = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exitStatus, output)
    }
}

/// A failure of the test machinery itself, with a message.
public struct TestFailure: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// Waits until `condition` holds, checking every 20 ms; throws after `timeout`.
public func poll(_ what: String, timeout: Duration = .seconds(30), _ condition: () async throws -> Bool) async throws {
    let deadline = ContinuousClock.now + timeout
    while ContinuousClock.now < deadline {
        if try await condition() { return }
        try await Task.sleep(for: .milliseconds(20))
    }
    throw TestFailure("timed out after \(timeout) waiting for \(what)")
}

/// Ports `freePort` has handed out in this process.
private let handedOutPorts = Mutex<Set<Int>>([])

/// A loopback port nothing listens on now, for a worker's health server, a webhook or a scratch
/// Redis: below the ephemeral range, and never one of the services' ports (25680–25713,
/// 26479–26481 and friends are taken by the test and cluster profiles). Never one handed out
/// before in this process: two drawn for one worker (its webhook and its health server) were
/// the same port once in about ten thousand, and the worker could not start.
public func freePort() -> Int {
    while true {
        let port = Int.random(in: 20000...29999)
        guard handedOutPorts.withLock({ $0.insert(port).inserted }) else { continue }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return port }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        close(fd)
        if bound == 0 { return port }
    }
}

/// A name no other test uses (queues, keys).
public func uniqueName(_ prefix: String) -> String {
    "\(prefix).\(UUID().uuidString.prefix(8).lowercased())"
}

/// True for the first caller of `take` only.
public final class FirstTime: Sendable {
    private let taken = Atomic<Bool>(false)

    public init() {}

    public func take() -> Bool {
        !taken.exchange(true, ordering: .relaxed)
    }
}
