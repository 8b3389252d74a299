import ArgumentParser
import Foundation
import Logging
import Metrics
import PipelineKit
import Prometheus
import ServiceLifecycle

/// `run`: the worker, until SIGTERM/SIGINT.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the worker until SIGTERM/SIGINT (SIGHUP reloads the pipeline).")

    @OptionGroup var options: PipelineOptions

    func run() async throws {
        let environment = ProcessEnvironment.load()
        LoggingSetup.bootstrap(environment: environment)
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: metrics))
        let logger = Logger(label: "outbound-worker")

        let file = options.file(environment)
        let variant = options.variant(environment)
        let loader = PipelineLoader(registry: BuiltinPlugins.registry, environment: environment)
        let result = loader.load(path: file, variant: variant)
        printDiagnostics(result.diagnostics)
        guard let definition = result.definition else {
            logger.error("the pipeline has errors; not starting", metadata: ["file": .string(file)])
            throw ExitStatus.invalid
        }
        let port = Int(environment["HEALTH_PORT"] ?? "") ?? 8080
        if let problem = PortProbe.problem(port: port) {
            logger.error("cannot start: HEALTH_PORT \(port) \(problem)")
            throw ExitStatus.cannotStart
        }
        let assembler = PipelineAssembler(registry: BuiltinPlugins.registry, workerID: WorkerIdentity.make(), logger: logger)
        let pipeline: AssembledPipeline
        let source: any Source
        do {
            pipeline = try await assembler.assemble(definition)
            source = try await assembler.makeSource(definition)
        } catch {
            logger.error("cannot start: \(error)")
            throw ExitStatus.cannotStart
        }
        let host = PipelineHost(pipeline)
        logger.info("starting", metadata: ["pipeline": .string(definition.name), "digest": .string(definition.digest), "worker_id": .string(assembler.workerID)])
        let group = ServiceGroup(configuration: .init(
            services: [
                .init(service: HealthServer.application(port: port, source: source, host: host, metrics: metrics)),
                .init(service: ReloadService(loader: loader, file: file, variant: variant, assembler: assembler, host: host, logger: logger)),
                .init(service: WorkerService(source: source, host: host, logger: logger), successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        do {
            try await group.run()
        } catch {
            logger.error("stopped on an error: \(error)")
            await host.shutdown()
            throw ExitStatus.cannotStart
        }
        await host.shutdown()
        logger.info("stopped")
    }
}

/// Identifies this worker process in idempotency keys: host, process id and a random suffix.
enum WorkerIdentity {
    static func make() -> String {
        "\(ProcessInfo.processInfo.hostName)-\(ProcessInfo.processInfo.processIdentifier)-\(String(UInt32.random(in: 0...UInt32.max), radix: 36))"
    }
}

/// Tells whether a TCP port can be bound, before the services start.
enum PortProbe {
    static func problem(port: Int) -> String? {
        guard (1...65535).contains(port) else { return "is not a port number" }
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var reuse: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &reuse, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr = in_addr(s_addr: 0)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return bound == 0 ? nil : "is in use (\(String(cString: strerror(errno))))"
    }
}
