import AMQPClient
import ArgumentParser
import Foundation
import PipelineKit
import RabbitMQPlugin
import Synchronization
import UnixSignals

/// `replay`: moves dead letters back to the source queue, each confirmed (in one broker
/// transaction with its removal from `.dead`), with `x-attempts` reset.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Move dead letters matching the filters from {queue}.dead back to the queue.",
        discussion: """
        Each move publishes the copy and removes the dead letter in one broker transaction: Ctrl-C (or kill) \
        at any point leaves every letter in exactly one queue; run it again to move the rest. The copy's \
        attempts start again, its old error is kept as x-replayed-from-error, and idempotency still applies: \
        a letter whose message was sent meanwhile is acknowledged as a duplicate, not sent twice.
        """)

    @OptionGroup var options: PipelineOptions

    @Option(name: .long, help: "Only letters of this step (x-error-step); repeat for several.")
    var step: [String] = []

    @Option(name: .long, help: "Only letters with this Cloud API error code (x-error-code); repeat for several.")
    var code: [Int] = []

    @Option(name: .long, help: "Only letters dead-lettered within this long before now, e.g. 30m, 2h.")
    var since: String?

    @Option(name: .long, help: "Move at most this many letters.")
    var limit: Int?

    @Flag(name: .long, help: "List the letters that would move; move nothing.")
    var dryRun = false

    func validate() throws {
        if let since, DurationParser.parse(since) == nil { throw ValidationError("--since \"\(since)\" is not a duration (e.g. 30m, 2h, 168h; at most 100 years)") }
        if let limit, limit < 1 { throw ValidationError("--limit must be at least 1") }
    }

    func run() async throws {
        let (source, worker) = try options.readSource()
        let topology = try QueueTopology(source: source.settings, worker: worker)
        let urls = try BrokerConnection.urls(source.settings)
        let filter = DeadLetterFilter(steps: Set(step), codes: Set(code), since: since.flatMap(DurationParser.parse).map { Date() - TimeInterval($0.milliseconds) / 1000 })
        let lanes = try RabbitMQSettings(source.settings).lanes
        let replay = DeadLetterReplay(urls: urls, topology: topology, lanes: lanes, filter: filter, limit: limit, dryRun: dryRun)

        let interrupted = Atomic<Bool>(false)
        let signals = await UnixSignalsSequence(trapping: .sigint, .sigterm)
        let watcher = Task {
            for await _ in signals {
                if interrupted.exchange(true, ordering: .acquiringAndReleasing) {
                    // A second signal: a move waiting on a broker that does not answer ends now. Its transaction,
                    // never committed, is rolled back when the connection goes: each letter stays in one queue.
                    FileHandle.standardError.write(Data("interrupted again: stopping now (a move not committed stays undone)\n".utf8))
                    Foundation.exit(130)
                }
                FileHandle.standardError.write(Data("\ninterrupted: finishing the move in progress, then stopping (again to stop at once)\n".utf8))
            }
        }
        defer { watcher.cancel() }
        let verb = dryRun ? "would move" : "moved"
        let outcome: DeadLetterReplay.Outcome
        do {
            outcome = try await replay.run(shouldStop: { interrupted.load(ordering: .acquiring) }) { progress in
                switch progress {
                case .matched(let letter):
                    Self.say("\(verb) \(letter.summary)")
                case .scanned(let totals):
                    FileHandle.standardError.write(Data("… \(totals.scanned)/\(totals.present) looked at, \(totals.matched) \(verb)\n".utf8))
                }
            }
        } catch where error is AMQPError || error is ReplayError || error is DeadLetterReaders.Busy {
            FileHandle.standardError.write(Data("replay: \(error)\n".utf8))
            throw ExitStatus.cannotStart
        }
        let rest = outcome.present - outcome.moved
        let destination = lanes.isEmpty ? topology.queue : "their lanes' queues"
        Self.say("\(verb) \(outcome.matched) of \(outcome.present) dead letter(s) from \(topology.deadQueue) to \(destination); \(rest) stay in \(topology.deadQueue)")
        if outcome.interrupted {
            Self.say("interrupted after \(outcome.scanned) of \(outcome.present) letters: run the same command again to move the rest")
            throw ExitCode(130)
        }
    }

    /// One line on standard output, written at once (not buffered), so what was moved is on record even if the process is killed next.
    private static func say(_ line: String) {
        FileHandle.standardOutput.write(Data((line + "\n").utf8))
    }
}
