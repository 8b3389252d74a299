import AsyncHTTPClient
import Foundation
import Logging
import NIOCore
import PipelineKit
import Synchronization
import Testing
import TestSupport
@testable import WebhookPlugin

/// The `whatsapp_webhook` source on its own, driven as `PipelineWorker` drives it: each POST
/// handed out is answered — 200 or 503 — whatever the runtime does, and `stop` returns (SPEC 6:
/// SIGTERM ends with exit 0, not a forced exit behind a request left waiting).
@Suite struct WebhookSourceTests {
    private final class Flag: Sendable {
        private let value = Atomic<Bool>(false)
        func raise() { value.store(true, ordering: .releasing) }
        var isRaised: Bool { value.load(ordering: .acquiring) }
    }

    private let port = freePort()
    private let configured: Settings

    init() throws {
        configured = try settings("port: \(port)\nverify_token: verify\napp_secret: unit-secret\nmax_pending_bytes: 1048576\n", schema: SourcePlugin.whatsAppWebhook.settings)
    }

    private func makeSource() async throws -> any Source {
        var logger = Logger(label: "test.webhook")
        logger.logLevel = .critical
        return try await SourcePlugin.whatsAppWebhook.make(SourceBuildContext(settings: configured, worker: WorkerConfiguration(settings: configured), logger: logger))
    }

    /// POSTs a signed status webhook (with `padding` bytes more); returns the status answered.
    private func post(_ wamid: String, padding: Int = 0, timeout: TimeAmount = .seconds(20)) async throws -> Int {
        let pad = String(repeating: " ", count: padding)
        let body = Array(#"{"object":"whatsapp_business_account",\#(pad)"entry":[{"changes":[{"field":"messages","value":{"statuses":[{"id":"\#(wamid)","status":"sent"}]}}]}]}"#.utf8)
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/webhooks/whatsapp")
        request.method = .POST
        for (name, value) in SourcePlugin.whatsAppWebhook.admission?.authenticate(body, configured) ?? [:] { request.headers.add(name: name, value: value) }
        request.body = .bytes(ByteBuffer(bytes: body))
        return Int(try await HTTPClient.shared.execute(request, timeout: timeout).status.code)
    }

    @Test func everyPostHandedOutIsAnsweredAndStopReturns() async throws {
        let source = try await makeSource()
        try await source.start()
        var events = source.events.makeAsyncIterator()
        guard case .connected? = await events.next() else { throw TestFailure("no `.connected` first") }

        // Settled as acknowledged: 200.
        let acknowledged = Task { try await post("wamid.ack") }
        guard case .delivery(let first)? = await events.next() else { throw TestFailure("the POST was not handed out") }
        #expect(await source.settle(first, .ack))
        #expect(try await acknowledged.value == 200)

        // Handed out, then the runtime stops without settling it (its loop ended).
        let forgotten = Task { try await post("wamid.forgotten") }
        guard case .delivery? = await events.next() else { throw TestFailure("the POST was not handed out") }
        source.stopIntake()
        guard case .intakeStopped? = await events.next() else { throw TestFailure("no `.intakeStopped` after stopIntake") }
        #expect(try await post("wamid.late") == 503, "after stopIntake a POST is answered 503 at once")
        #expect(!source.status().consuming)

        let stopped = Flag()
        Task {
            await source.stop()
            stopped.raise()
        }
        try await poll("the source stops", timeout: .seconds(10)) { stopped.isRaised }
        #expect(try await forgotten.value == 503, "a POST the runtime never settled is answered 503 when the source stops (Meta retries)")
        #expect(await events.next() == nil, "events end with stop")
        // (The HTTP client tries to connect again until the request's deadline: a short one.)
        await #expect(throws: (any Error).self, "the server no longer listens") { try await post("wamid.after", timeout: .seconds(1)) }
    }

    @Test func postsBeyondMaxPendingBytesAreAnswered503AtOnceUntilThePipelineCatchesUp() async throws {
        let source = try await makeSource()
        try await source.start()
        var events = source.events.makeAsyncIterator()
        guard case .connected? = await events.next() else { throw TestFailure("no `.connected` first") }
        let large = 400_000

        // Two large POSTs wait for the pipeline (800 KB of the 1 MiB allowed).
        let first = Task { try await post("wamid.1", padding: large) }
        guard case .delivery(let one)? = await events.next() else { throw TestFailure("the first POST was not handed out") }
        let second = Task { try await post("wamid.2", padding: large) }
        guard case .delivery(let two)? = await events.next() else { throw TestFailure("the second POST was not handed out") }
        #expect(try await post("wamid.3", padding: large) == 503, "a third would pass max_pending_bytes: answered at once, not held")
        // A small one still fits.
        let small = Task { try await post("wamid.small") }
        guard case .delivery(let three)? = await events.next() else { throw TestFailure("a POST within the bytes left was not handed out") }

        // The pipeline settles one: there is room again.
        #expect(await source.settle(one, .ack))
        #expect(try await first.value == 200)
        let fourth = Task { try await post("wamid.4", padding: large) }
        guard case .delivery(let four)? = await events.next() else { throw TestFailure("a POST was not handed out once there was room") }
        for delivery in [two, three, four] { #expect(await source.settle(delivery, .ack)) }
        #expect(try await [second.value, small.value, fourth.value] == [200, 200, 200])
        source.stopIntake()
        await source.stop()
    }
    /// Bodies are bounded while they are received, before a signature says who sends them: a
    /// connection that sent part of a large body and stalled held it for good, and any number of them
    /// took the worker's memory. Beyond `max_pending_bytes` being read, a POST is answered 503 unread.
    @Test func bodiesBeingReceivedBeyondMaxPendingBytesAreRefusedUnread() async throws {
        let source = try await makeSource()
        try await source.start()
        var events = source.events.makeAsyncIterator()
        guard case .connected? = await events.next() else { throw TestFailure("no `.connected` first") }
        // Declares all but 76 bytes of the 1 MiB (a signed POST here is 147), sends a tenth and stalls.
        let (chunks, feed) = AsyncStream.makeStream(of: ByteBuffer.self)
        feed.yield(ByteBuffer(repeating: UInt8(ascii: " "), count: 100_000))
        var stalling = HTTPClientRequest(url: "http://127.0.0.1:\(port)/webhooks/whatsapp")
        stalling.method = .POST
        stalling.body = .stream(chunks, length: .known(Int64(1_048_500)))
        let stalled = Task { try await HTTPClient.shared.execute(stalling, timeout: .seconds(60)) }

        // A signed POST is refused unread while the stalled body is being read (handed out before, and let through).
        let webhook = try #require(source as? WebhookSource)
        try await poll("the stalled body being read") { webhook.bytesBeingRead >= 1_048_500 }
        #expect(try await post("wamid.meanwhile", timeout: .seconds(5)) == 503, "a POST while 1 MiB is being read")

        // The stalled connection gone, its reservation goes with it.
        stalled.cancel()
        feed.finish()
        _ = await stalled.result
        try await poll("the stalled body given up") { webhook.bytesBeingRead == 0 }
        let after = Task { try await post("wamid.after") }
        guard case .delivery(let delivery)? = await events.next() else { throw TestFailure("a POST after the stalled one went was not handed out") }
        #expect(await source.settle(delivery, .ack))
        #expect(try await after.value == 200)
        source.stopIntake()
        await source.stop()
    }
}
