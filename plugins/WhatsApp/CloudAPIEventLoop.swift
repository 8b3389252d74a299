import NIOPosix

/// The one event loop every Cloud API client of the process does its I/O on.
///
/// async-http-client runs a delegate's callbacks (`CloudAPIExchange`: head written, body written,
/// answer) on the request's event loop, and with no preference that is any loop of the group —
/// while the connection that carries the request lives on one loop of its own. On NIO's
/// two-thread singleton (2 cores) half the sends hopped between the loops for every callback.
/// With one loop, a send's request and its connection share a thread (the A/B: Benchmarks/HISTORY.md).
///
/// One thread carries every request of the process: at concurrency 128 on this project's 2-core
/// machine, moving 3,900 messages a second, it used a fifth of a core. A process that needs more
/// is better run as several workers on the queue. NIO resolves host names on one queue per loop:
/// a DNS server slow to answer delays each new connection in turn (such a connect fails as not
/// sent, retried by the worker's policies).
enum CloudAPIEventLoop {
    /// Started on first use, never shut down (like NIO's singleton): clients come and go with reloads.
    static let shared = MultiThreadedEventLoopGroup(numberOfThreads: 1)
}
