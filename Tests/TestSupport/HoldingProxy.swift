import AMQPClient
import Foundation
import PipelineKit
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A TCP relay on loopback to a local port (the test broker, the Cloud API stand-in) that can
/// stall: while it holds, what its clients send is swallowed — a publish never reaches the broker
/// and its confirm never comes, as with a broker that stopped answering — and `swallowed` counts
/// it, so a test knows when a worker is waiting for a confirm. With a `connectDelay`, each
/// connection it accepts is relayed only that long after (nothing read or forwarded meanwhile), as
/// one to a far server takes that long to open (TCP and TLS handshakes: 100 ms and more to Meta).
/// `close` cuts every connection and stops listening.
public final class HoldingProxy: Sendable {
    public let port: Int
    private let target: Int
    private let connectDelay: Duration
    private let listener: Int32

    private struct State {
        var holding = false
        var swallowed = 0
        var closed = false
        /// Bytes still relayed to clients before every connection is cut (`cut(afterRelaying:)`).
        var cutAfter: Int?
        /// Each relayed connection's two sockets, by the client's; and how many of its two pumps ended.
        var connections: [Int32: (upstream: Int32, ended: Int)] = [:]
    }

    private let state = Mutex(State())

    /// Listens on a free loopback port and relays each connection to `127.0.0.1:targetPort`, `connectDelay` after it came.
    public init(to targetPort: Int, connectDelay: Duration = .zero) throws {
        target = targetPort
        self.connectDelay = connectDelay
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("proxy: socket: \(String(cString: strerror(errno)))") }
        var address = Self.loopback(port: 0)
        let bound = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0, listen(fd, 16) == 0 else {
            Glibc.close(fd)
            throw TestFailure("proxy: cannot listen: \(String(cString: strerror(errno)))")
        }
        var local = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &local) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        port = Int(UInt16(bigEndian: local.sin_port))
        listener = fd
        let thread = Thread { [self] in acceptLoop() }
        thread.name = "holding-proxy"
        thread.start()
    }

    /// A relay to the test broker, and `TestServices.rabbitURL` through it.
    public static func toTestBroker() throws -> (proxy: HoldingProxy, url: String) {
        let broker = try AMQPURL(TestServices.rabbitURL)
        let proxy = try HoldingProxy(to: broker.port)
        return (proxy, proxy.url(replacing: "\(broker.host):\(broker.port)", in: TestServices.rabbitURL))
    }

    /// `url` with its host and port replaced by the proxy's.
    public func url(replacing hostAndPort: String, in url: String) -> String {
        url.replacingOccurrences(of: hostAndPort, with: "127.0.0.1:\(port)")
    }

    /// From now on, what clients send is swallowed.
    public func hold() {
        state.withLock { $0.holding = true }
    }

    /// Relays `bytes` more to the clients, then cuts the connection that relayed the last of them
    /// (one cut mid-message); later connections are relayed as before.
    public func cut(afterRelaying bytes: Int) {
        state.withLock { $0.cutAfter = bytes }
    }

    /// Bytes swallowed since `hold`.
    public var swallowed: Int { state.withLock { $0.swallowed } }

    /// Stops listening and cuts every connection (what was swallowed is never delivered).
    public func close() {
        // shutdown wakes the threads blocked on these sockets, which close them when they end
        // (under the lock, so no socket is closed, and its number reused, in between).
        state.withLock { state in
            guard !state.closed else { return }
            state.closed = true
            for fd in [listener] + state.connections.flatMap({ [$0.key, $0.value.upstream] }) {
                _ = Glibc.shutdown(fd, CInt(SHUT_RDWR))
            }
        }
    }

    private func acceptLoop() {
        while true {
            let client = accept(listener, nil, nil)
            guard client >= 0 else {
                if errno == EINTR { continue }
                break
            }
            if connectDelay == .zero {
                relay(client)
            } else {
                Thread { [self] in
                    Thread.sleep(forTimeInterval: connectDelay.secondsDouble)
                    relay(client)
                }.start()
            }
        }
        Glibc.close(listener)
    }

    /// Connects to the target for `client` and relays between them until either side closes.
    private func relay(_ client: Int32) {
        let upstream = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = Self.loopback(port: target)
        var connected = false
        if upstream >= 0 {
            connected = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(upstream, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
            } == 0
        }
        var tracked = false
        if connected {
            tracked = state.withLock { state -> Bool in
                guard !state.closed else { return false }
                state.connections[client] = (upstream, 0)
                return true
            }
        }
        guard tracked else {
            Glibc.close(client)
            if upstream >= 0 { Glibc.close(upstream) }
            return
        }
        // Each write goes at once: with Nagle's algorithm a small write waits for the ACK of the one
        // before, which the other side delays up to 40 ms — requests relayed in bursts, not as sent.
        var noDelay: CInt = 1
        for fd in [client, upstream] { _ = setsockopt(fd, CInt(IPPROTO_TCP), TCP_NODELAY, &noDelay, socklen_t(MemoryLayout<CInt>.size)) }
        Thread { [self] in pump(from: client, to: upstream, client: client, swallowing: true) }.start()
        Thread { [self] in pump(from: upstream, to: client, client: client, swallowing: false) }.start()
    }

    /// Copies `source` to `destination` until either side closes; the second pump of a connection to end closes both sockets.
    private func pump(from source: Int32, to destination: Int32, client: Int32, swallowing: Bool) {
        var buffer = [UInt8](repeating: 0, count: 16_384)
        relay: while true {
            let count = buffer.withUnsafeMutableBytes { read(source, $0.baseAddress, $0.count) }
            if count < 0, errno == EINTR { continue }
            guard count > 0 else { break }
            if swallowing, state.withLock({ state -> Bool in
                guard state.holding else { return false }
                state.swallowed += count
                return true
            }) { continue }
            // Toward the client, within what is left before a cut.
            let (relayed, cutsNow) = swallowing ? (count, false) : state.withLock { state -> (Int, Bool) in
                guard let left = state.cutAfter else { return (count, false) }
                state.cutAfter = left > count ? left - count : nil
                return (min(left, count), left <= count)
            }
            var sent = 0
            while sent < relayed {
                let written = buffer.withUnsafeBytes { send(destination, $0.baseAddress! + sent, relayed - sent, CInt(MSG_NOSIGNAL)) }
                if written < 0, errno == EINTR { continue }
                guard written > 0 else { break relay }
                sent += written
            }
            if cutsNow { break }
        }
        _ = Glibc.shutdown(source, CInt(SHUT_RDWR))
        _ = Glibc.shutdown(destination, CInt(SHUT_RDWR))
        let last = state.withLock { state -> Bool in
            guard var connection = state.connections[client] else { return false }
            connection.ended += 1
            state.connections[client] = connection.ended == 2 ? nil : connection
            return connection.ended == 2
        }
        if last {
            Glibc.close(source)
            Glibc.close(destination)
        }
    }

    private static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        return address
    }
}
