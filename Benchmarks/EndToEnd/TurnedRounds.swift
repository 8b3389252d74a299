/// Rounds of an A/B of whole runs (drain, then latency) whose order turns each round — A B, B A,
/// A B … — both runs of a round measuring latency at one publish rate.
///
/// The second run of a pair is favoured: the same build against itself, concurrency 32, 4 rounds,
/// gave the second 1.02 × the throughput, 0.90 × the CPU and 0.76 × the p99 (2026-12-06). With
/// the order fixed, every ratio credited that to the subject run second.
///
/// Both runs of a round measure latency at one rate: half what `first` last drained at — in
/// its own round when it runs first, in the round before when it runs second. A run measured at
/// a higher rate would have its tail judged under more load, and following `first`'s latest drain
/// keeps the rate at about half the machine's speed that hour (a rate fixed in round 1 was 55–62 %
/// of the worker's capacity in later rounds of a slowing hour).
@MainActor
func turnedRounds<Side: Hashable & Sendable>(_ rounds: Int, first: Side, second: Side,
                                             _ run: (_ side: Side, _ round: Int, _ latencyRate: Double?) async throws -> RunResult) async throws -> [Side: [RunResult]] {
    var runs: [Side: [RunResult]] = [:]
    var firstsHalfRate: Double?
    for round in 1...rounds {
        let order = turnedOrder(round, first, second)
        var roundRate = order[0] == first ? nil : firstsHalfRate
        for side in order {
            let result = try await run(side, round, roundRate)
            roundRate = roundRate ?? result.latencyRate
            if side == first { firstsHalfRate = result.drain.halfRate }
            runs[side, default: []].append(result)
        }
    }
    return runs
}

/// `first, second` in odd rounds and `second, first` in even ones (rounds count from 1).
func turnedOrder<Side>(_ round: Int, _ first: Side, _ second: Side) -> [Side] {
    round % 2 == 1 ? [first, second] : [second, first]
}
