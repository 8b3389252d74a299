import ArgumentParser
import Foundation
import Logging
import Metrics
import PipelineKit
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `run`: the worker, until SIGTERM/SIGINT.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run the worker until SIGTERM/SIGINT (SIGHUP reloads the pipeline and .env).")

    @OptionGroup var options: PipelineOptions

    func run() async throws {
        // SIGHUP's default would end the process. One that comes while the worker starts (the file
        // edited after it was read, Redis slow to answer) is kept and reloads once it runs.
        signal(SIGHUP, SIG_IGN)
        let reloads = await UnixSignalsSequence(trapping: .sighup)
        let environment = ProcessEnvironment.load()
        let settings: ProcessSettings
        do {
            settings = try ProcessSettings(environment)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw ExitStatus.invalid
        }
        LoggingSetup.bootstrap(settings.logging, traced: TracingSetup.isRequested(by: environment))
        let metrics = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(MetricsSetup.factory(registry: metrics))
        let logger = Logger(label: "outbound-worker")
        let tracing: (any Service)?
        do {
            tracing = try TracingSetup.bootstrap(environment, logger: logger)
        } catch {
            logger.error("cannot start: tracing (OTEL_*): \(error)")
            throw ExitStatus.invalid
        }

        let file = options.file(environment)
        let variant = options.variant(environment)
        let result = PipelineLoader(registry: BuiltinPlugins.registry, environment: environment).load(path: file, variant: variant)
        printDiagnostics(result.diagnostics)
        guard let definition = result.definition else {
            logger.error("the pipeline has errors; not starting", metadata: ["file": .string(file)])
            throw ExitStatus.invalid
        }
        let healthPort = definition.healthPort ?? settings.healthPort
        if let problem = PortProbe.problem(port: healthPort) {
            logger.error("cannot start: \(definition.healthPort == nil ? "HEALTH_PORT" : "health.port") \(healthPort) \(problem)")
            throw ExitStatus.cannotStart
        }
        let flow = FlowControl(logger: logger)
        let assembler = PipelineAssembler(registry: BuiltinPlugins.registry, workerID: WorkerIdentity.make(), flow: flow, logger: logger)
        let pipeline: AssembledPipeline
        do {
            pipeline = try await assembler.assemble(definition)
        } catch {
            logger.error("cannot start: \(error)")
            throw ExitStatus.cannotStart
        }
        let host = PipelineHost(pipeline)
        let source: any Source
        var sink: (any OutcomeSink)?
        do {
            source = try await assembler.makeSource(definition)
            sink = try await assembler.makeSink(definition)
            try await sink?.start()
        } catch {
            logger.error("cannot start: \(error)")
            // What was made must close before the process ends (the Cloud API's HTTP client insists).
            await sink?.shutdown()
            await host.shutdown()
            throw ExitStatus.cannotStart
        }
        let shutdownLimits = ShutdownLimits(for: definition)
        let worker = PipelineWorker(source: source, pipelines: host, configuration: definition.worker, flow: flow, sink: sink, logger: logger)
        logger.info("starting", metadata: ["pipeline": .string(definition.name), "digest": .string(definition.digest), "worker_id": .string(assembler.workerID)])
        // The exporter first: a group stops its services last to first, so the spans of the drain are still exported.
        // The worker last, so it is the first told whenever the group shuts down: its drain, and the
        // limits (`ShutdownLimits`), start then. Any service that ends shuts the group down gracefully.
        let services: [any Service] = (tracing.map { [$0] } ?? []) + [
            HealthServer.application(port: healthPort, worker: worker, host: host, metrics: metrics),
            ReloadService(signals: reloads, registry: BuiltinPlugins.registry, environment: { ProcessEnvironment.load() }, file: file, variant: variant,
                          assembler: assembler, host: host, worker: worker, shutdownLimits: shutdownLimits, started: host.pipeline.definition, logger: logger),
            worker,
        ]
        var configuration = ServiceGroupConfiguration(
            services: services.map { .init(service: $0, successTerminationBehavior: .gracefullyShutdownGroup, failureTerminationBehavior: .gracefullyShutdownGroup) },
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        // The limits follow the reloads (`ShutdownLimits`); the group's own would stay as they are now.
        configuration.maximumGracefulShutdownDuration = nil
        configuration.maximumCancellationDuration = nil
        do {
            try await shutdownLimits.enforce(on: ServiceGroup(configuration: configuration), from: { await worker.stopping() }, logger: logger)
        } catch {
            logger.error("stopped on an error: \(error)")
            await sink?.shutdown()
            await host.shutdown()
            throw ExitStatus.cannotStart
        }
        await sink?.shutdown()
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
