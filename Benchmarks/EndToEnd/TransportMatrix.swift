import AMQPClient
import Foundation
import TestSupport

/// The worker against the bare loop on each way of reaching the Cloud API — plain HTTP/1.1, TLS
/// with HTTP/1.1, TLS with HTTP/2 (what graph.facebook.com offers) — at each concurrency: for
/// each point, worker and bare loop in turns (`turnedRounds`), `rounds` times, medians and ratios.
@MainActor
struct TransportMatrix {
    let options: Options
    let publisher: AMQPPublisher

    func run() async throws {
        let transports = options.transports.compactMap { StandInTransport.named($0, tlsDirectory: options.tlsDirectory) }
        let count = options.seriesMessages
        print("\(count) messages a run, then \(options.latencySeconds) s at half the worker's latest drain rate (both subjects of a round); \(options.rounds) rounds a point, worker and bare loop in turns, the order turning each round\n")
        print("| transport | concurrency | worker msg/s | bare msg/s | worker / bare | p50 / p99 worker (ms) | p50 / p99 bare (ms) | CPU s / 1,000 worker | CPU s / 1,000 bare | peak RSS worker / bare (MiB) |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for transport in transports {
            let standIn = StandIn()
            let url = try await standIn.start(transport)
            if case .tls(_, _, false) = transport { measureStandInCapacity(standIn, at: url) }
            let caFile = transport.caFile(tlsDirectory: options.tlsDirectory)
            let bench = try Bench(options: options, standIn: standIn, apiURL: url, caFile: caFile, publisher: publisher)
            for concurrency in options.concurrencies {
                let runs = try await turnedRounds(options.rounds, first: Subject.worker, second: .baseline) { subject, round, latencyRate in
                    let label = "t\(concurrency)\(round)\(subject == .worker ? "w" : "b")"
                    return try await bench.measureRun(subject, count: count, concurrency: concurrency, latencyRate: latencyRate, label: label)
                }
                func value(_ subject: Subject, _ pick: (RunResult) -> Double) -> Double { median(runs[subject, default: []].map(pick)) }
                let worker = value(.worker) { $0.drain.throughput }
                let bare = value(.baseline) { $0.drain.throughput }
                print(String(format: "| %@ | %d | %.0f | %.0f | %@ | %.1f / %.1f | %.1f / %.1f | %.3f | %.3f | %.1f / %.1f |",
                             transport.description, concurrency, worker, bare, ratio(worker, bare),
                             value(.worker) { $0.latency.p50 }, value(.worker) { $0.latency.p99 },
                             value(.baseline) { $0.latency.p50 }, value(.baseline) { $0.latency.p99 },
                             value(.worker) { $0.cpuPerThousand }, value(.baseline) { $0.cpuPerThousand },
                             value(.worker) { $0.peakMB }, value(.baseline) { $0.peakMB }))
            }
        }
    }
}
