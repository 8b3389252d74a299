import Foundation

/// Starts a program with its output in `log`.
func spawn(_ arguments: [String], environment: [String: String], log: String) throws -> pid_t {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    posix_spawn_file_actions_adddup2(&actions, 1, 2)
    let variables = ProcessInfo.processInfo.environment.merging(environment) { $1 }.map { "\($0)=\($1)" }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = variables.map { strdup($0) } + [nil]
    defer { (argv + envp).forEach { free($0) } }
    // The child starts with no signal blocked and SIGTERM/SIGINT at their defaults: this process's
    // threads may block or ignore them (its HTTP server's signal handling), and a child inheriting
    // that would never stop on SIGTERM (a redis-server left running after the bench).
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var unblocked = sigset_t()
    sigemptyset(&unblocked)
    posix_spawnattr_setsigmask(&attributes, &unblocked)
    var defaults = sigset_t()
    sigemptyset(&defaults)
    sigaddset(&defaults, SIGTERM)
    sigaddset(&defaults, SIGINT)
    posix_spawnattr_setsigdefault(&attributes, &defaults)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var pid = pid_t()
    let status = posix_spawn(&pid, arguments[0], &actions, &attributes, argv, envp)
    guard status == 0 else { throw POSIXError(POSIXErrorCode(rawValue: status) ?? .EINVAL) }
    return pid
}

/// Stops a program with SIGTERM and reaps it.
func stop(_ pid: pid_t) {
    kill(pid, SIGTERM)
    var status: Int32 = 0
    waitpid(pid, &status, 0)
}

/// Memory and CPU of a running process, from /proc.
struct ProcessUsage {
    var peakKB = 0
    var residentKB = 0
    var cpuSeconds = 0.0

    init(_ pid: pid_t) {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        func kilobytes(_ field: String) -> Int {
            status.split(separator: "\n").first { $0.hasPrefix(field) }.flatMap { Int($0.split(separator: " ").dropFirst().first ?? "") } ?? 0
        }
        peakKB = kilobytes("VmHWM:")
        residentKB = kilobytes("VmRSS:")
        let stat = (try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8)) ?? ""
        let fields = stat.split(separator: ")").last?.split(separator: " ") ?? []
        let ticks = fields.count > 12 ? (Double(fields[11]) ?? 0) + (Double(fields[12]) ?? 0) : 0
        cpuSeconds = ticks / Double(sysconf(Int32(_SC_CLK_TCK)))
    }
}

/// The sum of every sample of `name` (labelled or not) over the `/metrics` of the workers on
/// `healthPorts`; nil when one of them does not answer.
func workersMetric(_ name: String, healthPorts: [Int]) -> Int? {
    var total = 0.0
    for port in healthPorts {
        guard let text = try? spawnAndWait(["/usr/bin/curl", "-sf", "--max-time", "2", "http://127.0.0.1:\(port)/metrics"]), text.contains("# TYPE") else { return nil }
        total += text.split(separator: "\n").filter { $0.hasPrefix(name + "{") || $0.hasPrefix(name + " ") }
            .compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }
    return Int(total.rounded())
}
