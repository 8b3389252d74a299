/// Rounds of an A/B of whole runs (drain, then latency) whose order turns each round — A B, B A,
/// A B … — with every latency phase at one publish rate.
///
/// The second run of a pair is favoured: the same build against itself, concurrency 32, 4 rounds,
/// gave the second 1.02 × the throughput, 0.90 × the CPU and 0.76 × the p99 (2026-12-06). With
/// the order fixed, every ratio credited that to the subject run second.
///
/// The rate is half what `first` drained at in round 1, kept for every later run of both sides:
/// a run measured at a higher rate would have its tail judged under more load, and a side that
/// runs first in a round cannot wait for the other's drain.
@MainActor
func turnedRounds<Side: Hashable & Sendable>(_ rounds: Int, first: Side, second: Side,
                                  _ run: (_ side: Side, _ round: Int, _ latencyRate: Double?) async throws -> RunResult) async throws -> [Side: [RunResult]] {
    var runs: [Side: [RunResult]] = [:]
    var latencyRate: Double?
    for round in 1...rounds {
        for side in turnedOrder(round, first, second) {
            let result = try await run(side, round, latencyRate)
            latencyRate = latencyRate ?? result.latencyRate
            runs[side, default: []].append(result)
        }
    }
    return runs
}

/// `first, second` in odd rounds and `second, first` in even ones (rounds count from 1).
func turnedOrder<Side>(_ round: Int, _ first: Side, _ second: Side) -> [Side] {
    round % 2 == 1 ? [first, second] : [second, first]
}
