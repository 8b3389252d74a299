import Foundation
import Logging
@testable import OutboundWorkerApp
import PipelineKit
import ServiceLifecycle
import Synchronization
import Testing
import TestSupport

/// The shutdown limits: past the graceful one the services are cancelled, past the cancellation
/// one the process crashes — mid-send, that leaves a `processing` key and maybe a second copy.
/// Each must leave room for what is still legitimately running then, on every pipeline run so far.
@Suite struct ShutdownLimitsTests {
    private func outboundPipeline() throws -> PipelineDefinition {
        let environment = ["WHATSAPP_ACCESS_TOKEN": "t", "PIPELINE_ENV": "", "IDEMPOTENCY_TTL_SECONDS": ""]
        let path = TestServices.repository.appendingPathComponent("pipelines/outbound.yaml").path
        return try #require(PipelineLoader(registry: BuiltinPlugins.registry, environment: environment).load(path: path).definition)
    }

    @Test func aSendInProgressAndTheLastConfirmsFitBeforeTheProcessIsEnded() throws {
        let definition = try outboundPipeline()
        let send = try #require(definition.slowestCall).timeout
        let bounds = ShutdownLimits.bounds(of: definition)
        // A send begun at the drain's end, then its outcome and one more batch waiting 15 s each for the broker's confirm.
        #expect(bounds.graceful >= definition.worker.drainTimeout + send + .seconds(30), "graceful: \(bounds.graceful)")
        // Cancelled at the graceful limit, a send begun just before it runs its own timeout.
        #expect(bounds.cancellation > send, "cancellation \(bounds.cancellation), a send up to \(send)")
    }

    /// The limits were the group's, fixed at start: a reload to a slower `timeout` left them as they were.
    @Test func aReloadedSlowerCallRaisesTheLimitsAndAnEarlierPipelineKeepsThem() throws {
        let definition = try outboundPipeline()
        let (resource, timeout) = try #require(definition.slowestCall)
        var slower = definition
        slower.callTimeouts[resource] = timeout + .seconds(50)
        let limits = ShutdownLimits(for: definition)
        limits.include(slower)
        #expect(limits.current == ShutdownLimits.bounds(of: slower))
        #expect(limits.current.graceful == ShutdownLimits.bounds(of: definition).graceful + .seconds(50))
        #expect(limits.current.cancellation > timeout + .seconds(50))
        // A message may still run on the slower pipeline after a reload back: never lowered.
        limits.include(definition)
        #expect(limits.current == ShutdownLimits.bounds(of: slower))
    }

    /// A service that drains for `drain` once told to shut down, noting whether it was cancelled first.
    private final class Draining: Service, Sendable {
        let drain: Duration
        let cancelled = Mutex<Bool?>(nil)

        init(drain: Duration) {
            self.drain = drain
        }

        func run() async throws {
            try? await gracefulShutdown()
            let cut: Bool
            do {
                try await Task.sleep(for: drain)
                cut = false
            } catch {
                cut = true
            }
            cancelled.withLock { $0 = cut }
        }
    }

    /// Runs a group of one `Draining` service under `limits`, shuts it down, runs `duringDrain`, and
    /// returns whether the service was cancelled before its drain ended.
    private func shutDown(drain: Duration, under limits: ShutdownLimits, duringDrain: () async throws -> Void = {}) async throws -> Bool? {
        let service = Draining(drain: drain)
        let group = ServiceGroup(configuration: ServiceGroupConfiguration(services: [.init(service: service)], logger: Logger(label: "test.shutdown")))
        let (began, begin) = AsyncStream.makeStream(of: Void.self)
        async let enforced: Void = limits.enforce(on: group, from: { for await _ in began { return } }, logger: Logger(label: "test.shutdown"))
        await group.triggerGracefulShutdown()
        begin.yield()
        try await duringDrain()
        try await enforced
        return service.cancelled.withLock { $0 }
    }

    @Test func aDrainLongerThanTheGracefulLimitIsCancelled() async throws {
        let limits = ShutdownLimits(.init(graceful: .milliseconds(300), cancellation: .seconds(30)))
        let started = ContinuousClock.now
        #expect(try await shutDown(drain: .seconds(20), under: limits) == true)
        #expect(ContinuousClock.now - started < .seconds(10), "cancelled at the graceful limit, not at the drain's end")
    }

    /// SIGHUP is still read while the worker drains: a pipeline reloaded then counts as well.
    @Test func aLimitRaisedDuringTheDrainIsTheOneEnforced() async throws {
        let limits = ShutdownLimits(.init(graceful: .seconds(2), cancellation: .seconds(30)))
        let cancelled = try await shutDown(drain: .seconds(3), under: limits) {
            // A reload 200 ms into the drain, once the limit of 2 s is being waited out.
            try await Task.sleep(for: .milliseconds(200))
            limits.include(.init(graceful: .seconds(20), cancellation: .seconds(30)))
        }
        #expect(cancelled == false, "the drain ran its whole 3 s under the raised limit")
    }
}
