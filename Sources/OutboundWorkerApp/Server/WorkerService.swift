import Logging
import PipelineKit
import ServiceLifecycle

/// Runs the source until graceful shutdown (SIGTERM/SIGINT), then lets it drain.
struct WorkerService: Service {
    let source: any Source
    let host: PipelineHost
    let logger: Logger

    func run() async throws {
        try await withGracefulShutdownHandler {
            try await source.run(handler: { host.handler() })
        } onGracefulShutdown: {
            logger.info("shutting down: no new messages, draining those in flight")
            source.beginShutdown()
        }
        logger.info("worker stopped")
    }
}
