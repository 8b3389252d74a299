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
    /// A POST that declares `declared` bytes, sends `sent` of them and stalls until `feed` finishes.
    private func stallingPost(declared: Int, sending sent: Int, signature: String? = "sha256=" + String(repeating: "0", count: 64),
                              timeout: TimeAmount = .seconds(60)) -> (answer: Task<Int, any Error>, feed: AsyncStream<ByteBuffer>.Continuation) {
        let (parts, feed) = AsyncStream.makeStream(of: ByteBuffer.self)
        if sent > 0 { feed.yield(ByteBuffer(repeating: UInt8(ascii: " "), count: sent)) }
        var request = HTTPClientRequest(url: "http://127.0.0.1:\(port)/webhooks/whatsapp")
        request.method = .POST
        if let signature { request.headers.add(name: "X-Hub-Signature-256", value: signature) }
        request.body = .stream(parts, length: .known(Int64(declared)))
        return (Task { Int(try await HTTPClient.shared.execute(request, timeout: timeout).status.code) }, feed)
    }

    /// Bodies are bounded while they are received, before a signature says who sends them — by what
    /// has arrived: a connection that declared a large body and stalled held all it declared (and 64
    /// idle connections held the default bound: every genuine POST answered 503 unread).
    @Test func aStalledBodyHoldsOnlyWhatItSent() async throws {
        let source = try await makeSource()
        try await source.start()
        var events = source.events.makeAsyncIterator()
        guard case .connected? = await events.next() else { throw TestFailure("no `.connected` first") }
        // Declares all but 76 bytes of the 1 MiB bound (a signed POST here is 147), sends a tenth and stalls.
        let stalled = stallingPost(declared: 1_048_500, sending: 100_000)
        let webhook = try #require(source as? WebhookSource)
        try await poll("the stalled body's first part being read") { webhook.bytesBeingRead >= 100_000 }
        try #require(webhook.bytesBeingRead == 100_000, "what arrived, not what was declared")

        let meanwhile = Task { try await post("wamid.meanwhile", timeout: .seconds(5)) }
        guard case .delivery(let delivery)? = await events.next() else { throw TestFailure("a signed POST was not handed out beside the stalled one") }
        #expect(await source.settle(delivery, .ack))
        #expect(try await meanwhile.value == 200)

        // The stalled connection gone, what it held goes with it.
        stalled.answer.cancel()
        stalled.feed.finish()
        _ = await stalled.answer.result
        try await poll("the stalled body given up") { webhook.bytesBeingRead == 0 }
        source.stopIntake()
        await source.stop()
    }

    /// What bodies being received hold stays within `max_pending_bytes`: a body whose parts would
    /// go beyond is answered 503 and holds nothing after; a small POST still fits beside the first.
    @Test func bodiesBeingReceivedStayWithinMaxPendingBytes() async throws {
        let source = try await makeSource()
        try await source.start()
        var events = source.events.makeAsyncIterator()
        guard case .connected? = await events.next() else { throw TestFailure("no `.connected` first") }
        let webhook = try #require(source as? WebhookSource)
        let first = stallingPost(declared: 1_000_000, sending: 900_000)
        try await poll("the first body's 900,000 bytes being read") { webhook.bytesBeingRead >= 900_000 }
        let second = stallingPost(declared: 1_000_000, sending: 300_000, timeout: .seconds(20))
        let answered = await second.answer.result
        if case .success(let status) = answered { #expect(status == 503, "the body that would go beyond the bound") }
        try await poll("only the first body held") { webhook.bytesBeingRead == 900_000 }
        second.feed.finish()

        let small = Task { try await post("wamid.small", timeout: .seconds(5)) }
        guard case .delivery(let delivery)? = await events.next() else { throw TestFailure("a small signed POST was not handed out") }
        #expect(await source.settle(delivery, .ack))
        #expect(try await small.value == 200)
        first.answer.cancel()
        first.feed.finish()
        _ = await first.answer.result
        source.stopIntake()
        await source.stop()
    }

    /// A body that does not come is answered 408 within its deadline (5 s for a small one), not
    /// after 30 s: what it sent is held meanwhile.
    @Test func aSmallBodyThatNeverComesIsAnswered408WithinItsDeadline() async throws {
        let source = try await makeSource()
        try await source.start()
        let started = ContinuousClock.now
        let post = stallingPost(declared: 1_000, sending: 10)
        #expect(try await post.answer.value == 408)
        let took = ContinuousClock.now - started
        #expect(took >= .seconds(5) && took < .seconds(15), "answered after \(took)")
        post.feed.finish()
        source.stopIntake()
        await source.stop()
    }

    /// A POST whose `X-Hub-Signature-256` is missing or cannot be a signature, with a length that
    /// cannot be too large, is refused 401 without waiting for its body (SPEC 10's order: the size,
    /// then the signature); a body over the limit is still 413 first.
    @Test func aPostWithoutAWellFormedSignatureIsRefusedUnread() async throws {
        let source = try await makeSource()
        try await source.start()
        for signature in [nil, "sha256=zz", "sha1=" + String(repeating: "0", count: 40)] {
            let post = stallingPost(declared: 1_000, sending: 0, signature: signature, timeout: .seconds(5))
            #expect(try await post.answer.value == 401, "signature \(signature ?? "none")")
            post.feed.finish()
        }
        let large = stallingPost(declared: 2_000_000, sending: 0, signature: nil, timeout: .seconds(5))
        #expect(try await large.answer.value == 413)
        large.feed.finish()
        source.stopIntake()
        await source.stop()
    }
}
