import AsyncHTTPClient
import Foundation
import NIOCore
import PipelineKit

/// `outbound-worker run` as a subprocess, with its log in a file.
public final class WorkerProcess: @unchecked Sendable {
    public let pid: pid_t
    public let logPath: String
    public let healthPort: Int
    private var exitStatus: Int32?

    /// Starts the worker with `environment` over the test process's own, in `directory` (default: the
    /// repository). Standard error goes to the log too, unless `errorPath` names a file of its own.
    public init(_ arguments: [String] = ["run"], environment: [String: String], healthPort: Int, directory: URL? = nil, errorPath: String? = nil) throws {
        self.healthPort = healthPort
        logPath = FileManager.default.temporaryDirectory.appendingPathComponent("worker-\(UUID().uuidString).log").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
        posix_spawn_file_actions_addopen(&actions, 1, logPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        if let errorPath {
            posix_spawn_file_actions_addopen(&actions, 2, errorPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        } else {
            posix_spawn_file_actions_adddup2(&actions, 1, 2)
        }
        var variables = ProcessInfo.processInfo.environment
        for name in ["PIPELINE_ENV", "PIPELINE_FILE", "IDEMPOTENCY_TTL_SECONDS"] { variables[name] = nil }
        variables.merge(environment) { $1 }
        variables["HEALTH_PORT"] = String(healthPort)
        // `env -C` sets the working directory (glibc's addchdir is not visible from Swift).
        let argv = (["/usr/bin/env", "-C", (directory ?? TestServices.repository).path, TestServices.executable] + arguments).map { strdup($0) } + [nil]
        let envp = variables.map { strdup("\($0)=\($1)") } + [nil]
        defer {
            argv.forEach { free($0) }
            envp.forEach { free($0) }
        }
        var pid = pid_t()
        let spawned = posix_spawn(&pid, "/usr/bin/env", &actions, nil, argv, envp)
        guard spawned == 0 else { throw TestFailure("cannot start the worker: \(String(cString: strerror(spawned)))") }
        self.pid = pid
    }

    deinit {
        if exitStatus == nil {
            kill(pid, SIGKILL)
            var status: Int32 = 0
            waitpid(pid, &status, 0)
        }
    }

    public func signal(_ signal: Int32) {
        kill(pid, signal)
    }

    /// SIGTERM, then waits for the exit; returns the exit status.
    @discardableResult
    public func stop(timeout: Duration = .seconds(30)) async throws -> Int32 {
        signal(SIGTERM)
        return try await waitForExit(timeout: timeout)
    }

    /// Waits for the process to exit; returns its exit status (128+N for signal N).
    public func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let code = reap() { return code }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestFailure("worker \(pid) still running after \(timeout); log:\n\(log.suffix(3000))")
    }

    /// The exit status once the process has exited (reaped here, once), else nil.
    private func reap() -> Int32? {
        if let exitStatus { return exitStatus }
        var status: Int32 = 0
        guard waitpid(pid, &status, WNOHANG) == pid else { return nil }
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        exitStatus = code
        return code
    }

    public var log: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    /// GET a path of the worker's HTTP port: status and JSON body (nil when it does not answer).
    public func get(_ path: String) async -> (status: Int, body: JSONValue?)? {
        try? await fetch(path).get()
    }

    /// GET a path: status and JSON body, or why there was none.
    private func fetch(_ path: String) async -> Result<(status: Int, body: JSONValue?), any Error> {
        await response(path, upTo: 1 << 20).map { ($0.status, try? JSONValue(parsing: Array($0.body.readableBytesView))) }
    }

    /// GET a path: status and body (at most `limit` bytes), or why there was none.
    private func response(_ path: String, upTo limit: Int) async -> Result<(status: Int, body: ByteBuffer), any Error> {
        do {
            let response = try await Self.probe.execute(HTTPClientRequest(url: "http://127.0.0.1:\(healthPort)\(path)"), timeout: .seconds(2))
            return .success((Int(response.status.code), try await response.body.collect(upTo: limit)))
        } catch {
            return .failure(error)
        }
    }

    /// The client for workers' ports. Not `HTTPClient.shared`: its pool for a host and port lives
    /// as long as the test process and backs off after refused connects (up to a minute), which a
    /// later worker on the same port could wait out; here a refused connect fails at once.
    private static let probe: HTTPClient = {
        var configuration = HTTPClient.Configuration(timeout: .init(connect: .seconds(1), read: .seconds(2)))
        configuration.connectionPool.retryConnectionEstablishment = false
        return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }()

    /// GET a path whose answer may take longer than the probe's 2 s (up to `timeout`): status and JSON body.
    public func get(_ path: String, waitingUpTo timeout: Duration) async throws -> (status: Int, body: JSONValue?) {
        let response = try await Self.patientProbe.execute(HTTPClientRequest(url: "http://127.0.0.1:\(healthPort)\(path)"),
                                                           timeout: .milliseconds(Int64(timeout.components.seconds * 1000)))
        let body = try await response.body.collect(upTo: 1 << 20)
        return (Int(response.status.code), try? JSONValue(parsing: Array(body.readableBytesView)))
    }

    private static let patientProbe = HTTPClient(eventLoopGroupProvider: .singleton, configuration: HTTPClient.Configuration(timeout: .init(connect: .seconds(1), read: .seconds(60))))

    /// The raw text of a path (for /metrics).
    public func text(_ path: String) async -> String? {
        (try? await response(path, upTo: 4 << 20).get()).map { String(buffer: $0.body) }
    }

    /// Waits until `/ready` answers 200; fails at once if the process exits, and says what the
    /// last attempt got when the time is up.
    public func waitUntilReady(timeout: Duration = .seconds(30)) async throws {
        let deadline = ContinuousClock.now + timeout
        var last = "no attempt"
        while ContinuousClock.now < deadline {
            if let code = reap() { throw TestFailure("worker exited with status \(code) before it was ready: \(log.suffix(3000))") }
            switch await fetch("/ready") {
            case .success(let answer) where answer.status == 200: return
            case .success(let answer): last = "HTTP \(answer.status) \(answer.body?.encodedString() ?? "")"
            case .failure(let error): last = "\(error)"
            }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestFailure("worker not ready after \(timeout) (last /ready: \(last)): \(log.suffix(3000))")
    }
}
