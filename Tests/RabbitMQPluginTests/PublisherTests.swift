@testable import AMQPClient
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Synchronization
import Testing
import TestSupport

/// The confirmed publisher against the real broker.
@Suite(.serialized) struct PublisherTests {
    static let logger = SourceHarness.logger

    /// Publishes made together are confirmed together, often by one `multiple` ack; the broker
    /// returns an unroutable one just before that ack. Each return must fail its own publish:
    /// blamed on another, the unroutable copy counts as confirmed (and its original is lost),
    /// while a good one is retried.
    @Test func aReturnedPublishFailsExactlyThatPublish() async throws {
        let inspector = try QueueInspector()
        let queue = uniqueName("returns")
        try await inspector.publisher.declare(AMQPQueueDeclaration(name: queue))
        let publisher = AMQPPublisher(urls: [try AMQPURL(TestServices.rabbitURL)], logger: Self.logger)
        publisher.start()
        defer { publisher.stop() }
        var routed = 0
        for round in 0..<20 {
            let unroutable = Set((0..<20).map { _ in Int.random(in: 0..<60) })
            let failed = try await withThrowingTaskGroup(of: Int?.self) { group in
                for index in 0..<60 {
                    group.addTask {
                        let target = unroutable.contains(index) ? "\(queue).nowhere" : queue
                        do {
                            try await publisher.publish(routingKey: target, body: Array("\(round)-\(index)".utf8), properties: .persistentJSON)
                            return nil
                        } catch let error as AMQPError {
                            guard case .unroutable = error else { throw error }
                            return index
                        }
                    }
                }
                return try await group.reduce(into: Set<Int>()) { if let index = $1 { $0.insert(index) } }
            }
            #expect(failed == unroutable, "round \(round): the returned publishes are exactly those without a queue")
            routed += 60 - unroutable.count
        }
        #expect(try await inspector.depth(queue) == routed, "every publish reported confirmed is in the queue")
        await inspector.delete([queue])
    }

    /// A batch whose channel fails part way — a publish to an exchange that does not exist, which
    /// the broker answers by closing the channel: a publish of the batch the broker confirmed before
    /// is reported confirmed (reported failed, its caller would publish it again: a second copy of a
    /// retry, a letter or an event), and only what came after fails.
    @Test func aPublishConfirmedBeforeItsBatchFailedIsReportedConfirmed() async throws {
        let publisher = AMQPPublisher(urls: [try AMQPURL(TestServices.rabbitURL)], logger: Self.logger)
        defer { publisher.stop() }
        // Queued one after the other before the publisher starts: its first batch holds the three,
        // in this order. (Unroutable without `mandatory`: the broker confirms each as it takes it.)
        let exchanges = ["amq.direct", uniqueName("no-such-exchange"), "amq.direct"]
        var publishes: [Task<AMQPError?, Never>] = []
        for (index, exchange) in exchanges.enumerated() {
            publishes.append(Task {
                do throws(AMQPError) {
                    try await publisher.publish(exchange: exchange, routingKey: "nothing-bound", body: [UInt8(index)], properties: AMQPProperties(), mandatory: false)
                    return nil
                } catch {
                    return error
                }
            })
            try await poll("publish \(index) queued") { publisher.waitingRequests == index + 1 }
        }
        publisher.start()
        var failures: [AMQPError?] = []
        for publish in publishes { failures.append(await publish.value) }
        #expect(failures[0] == nil, "confirmed before the channel closed, reported failed: \(String(describing: failures[0]))")
        guard case .broker(code: 404, _)? = failures[1] else {
            Issue.record("the publish to no exchange: \(String(describing: failures[1]))")
            return
        }
        #expect(failures[2] != nil, "after the channel closed")
        try await publisher.publish(exchange: "amq.direct", routingKey: "nothing-bound", body: [3], properties: AMQPProperties(), mandatory: false)
    }

    /// librabbitmq keeps every frame it reads (a confirm, an RPC's answer) in the connection's
    /// memory pool until the caller releases it: the publisher never did, so a publisher that ran for
    /// days grew by about 40 bytes a confirm (the consumer has always released its own).
    @Test func aPublisherDoesNotGrowWithEveryConfirm() async throws {
        let publisher = AMQPPublisher(urls: [try AMQPURL(TestServices.rabbitURL)], logger: Self.logger)
        publisher.start()
        defer { publisher.stop() }
        func publishOneAtATime(_ count: Int) async throws {
            for index in 0..<count {
                try await publisher.publish(exchange: "amq.direct", routingKey: "nothing-bound", body: Array("\(index)".utf8), properties: AMQPProperties(), mandatory: false)
            }
        }
        try await publishOneAtATime(2_000)
        let before = try Self.residentBytes()
        try await publishOneAtATime(60_000)
        let grown = try Self.residentBytes() - before
        #expect(grown < 1_200_000, "the process grew by \(grown) bytes over 60,000 confirms (2.7 MB before)")
    }

    /// A node that takes the connection and closes it during the handshake (one stopping, a load
    /// balancer without a backend) is a connection failure, and the next URL is tried: it was read
    /// as a refused login ("connection closed" contains "closed"), which stops at the first URL —
    /// at start the worker said its password was wrong and exited.
    @Test func aConnectionClosedDuringTheHandshakeIsNotARefusedLogin() async throws {
        let broker = try AMQPURL(TestServices.rabbitURL)
        let closing = try HandshakeCloser()
        defer { closing.stop() }
        let closingURL = try AMQPURL(TestServices.rabbitURL.replacingOccurrences(of: "\(broker.host):\(broker.port)", with: "127.0.0.1:\(closing.port)"))
        let alone = try #require(await Self.declarationError(through: closingURL), "declared through a node that closes every connection")
        #expect(!alone.isRefusedIdentity, "\(alone)")
        let publisher = AMQPPublisher(urls: [closingURL, broker], logger: Self.logger)
        publisher.start()
        defer { publisher.stop() }
        let queue = uniqueName("next-url")
        _ = try await publisher.declare(AMQPQueueDeclaration(name: queue))
        try await publisher.delete(queue)
    }

    /// A user (or vhost) at its connection limit is closed with 530 "connection limit … is reached":
    /// no refused login (a starting worker exited saying its password was wrong), a connection problem
    /// that passes once a connection is freed (review).
    @Test func aConnectionLimitReachedIsNotARefusedLogin() async throws {
        let user = try SourceHarness.BrokerUser("limited")
        try TestServices.rabbitmqctl(["set_user_limits", user.name, #"{"max-connections": 0}"#])
        defer { try? TestServices.rabbitmqctl(["delete_user", user.name]) }
        let error = try #require(await Self.declarationError(through: try AMQPURL(user.url)), "declared beyond the user's connection limit")
        #expect(!error.isRefusedIdentity, "\(error)")
        #expect("\(error)".contains("connection limit"), "\(error)")
    }

    /// What a publisher connecting to `url` alone answers a declaration with (nil: declared).
    private static func declarationError(through url: AMQPURL) async -> AMQPError? {
        let publisher = AMQPPublisher(urls: [url], logger: logger)
        publisher.start()
        defer { publisher.stop() }
        do {
            _ = try await publisher.declare(AMQPQueueDeclaration(name: uniqueName("never")))
            return nil
        } catch {
            return error
        }
    }

    /// A broker that stops answering (a path that drops what it carries, heartbeats off) held the
    /// publisher's thread in a declaration's answer for good — every publish and event of the process
    /// behind it. An answer is waited for `answerTimeout`, then the connection is given up.
    @Test func aDeclarationTheBrokerNeverAnswersFailsInTime() async throws {
        let (proxy, url) = try HoldingProxy.toTestBroker()
        defer { proxy.close() }
        let publisher = AMQPPublisher(urls: [try AMQPURL(url)], heartbeat: 0, answerTimeout: .seconds(2), logger: Self.logger)
        publisher.start()
        defer { publisher.stop() }
        let queue = uniqueName("silent")
        _ = try await publisher.declare(AMQPQueueDeclaration(name: queue))
        proxy.hold()
        let answered = Mutex<String?>(nil)
        Task {
            do {
                _ = try await publisher.declare(AMQPQueueDeclaration(name: queue))
                answered.withLock { $0 = "declared" }
            } catch {
                answered.withLock { $0 = "\(error)" }
            }
        }
        try await poll("the declaration to fail", timeout: .seconds(20)) { answered.withLock { $0 } != nil }
        #expect(answered.withLock { $0 } != "declared", "not answered: an error")
        await (try QueueInspector()).delete([queue])
    }

    /// A message the broker returns (no queue for it) whose body is cut off by a lost connection:
    /// librabbitmq frees the body it was reading, and the publisher freed it again — the process
    /// crashed (glibc's double free, or a segmentation fault for a large body).
    @Test func aReturnedMessageCutOffMidBodyIsAnErrorNotACrash() async throws {
        let (proxy, url) = try HoldingProxy.toTestBroker()
        defer { proxy.close() }
        let publisher = AMQPPublisher(urls: [try AMQPURL(url)], heartbeat: 0, logger: Self.logger)
        publisher.start()
        defer { publisher.stop() }
        let queue = uniqueName("cut")
        _ = try await publisher.declare(AMQPQueueDeclaration(name: queue))
        proxy.cut(afterRelaying: 65_536)
        await #expect(throws: AMQPError.self) {
            try await publisher.publish(routingKey: "\(queue).nowhere", body: [UInt8](repeating: 7, count: 4 << 20), properties: .persistentJSON)
        }
        await (try QueueInspector()).delete([queue])
    }

    /// The test process's resident memory (`/proc/self/statm`).
    private static func residentBytes() throws -> Int {
        let statm = try String(contentsOfFile: "/proc/self/statm", encoding: .utf8).split(separator: " ")
        return (statm.count > 1 ? Int(statm[1]) ?? 0 : 0) * Int(sysconf(Int32(_SC_PAGESIZE)))
    }
}

/// A node that reads a client's AMQP protocol header and closes the connection (a node stopping).
private final class HandshakeCloser: Sendable {
    let port: Int
    private let listener: Int32

    init() throws {
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard listener >= 0, bound == 0, listen(listener, 8) == 0 else { throw TestFailure("cannot listen: \(String(cString: strerror(errno)))") }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) }
        }
        port = Int(UInt16(bigEndian: local.sin_port))
        self.listener = listener
        Thread {
            while true {
                let client = accept(listener, nil, nil)
                guard client >= 0 else { break }
                var header = [UInt8](repeating: 0, count: 8)
                var read = 0
                while read < 8 {
                    let count = header.withUnsafeMutableBytes { recv(client, $0.baseAddress! + read, 8 - read, 0) }
                    guard count > 0 else { break }
                    read += count
                }
                Glibc.close(client)
            }
            Glibc.close(listener)
        }.start()
    }

    /// Stops listening (the accepting thread ends).
    func stop() {
        _ = shutdown(listener, CInt(SHUT_RDWR))
    }
}
