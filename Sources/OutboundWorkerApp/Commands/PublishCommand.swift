import AMQPClient
import ArgumentParser
import Foundation
import Logging
import PipelineKit
import RabbitMQPlugin

/// `publish`: sends JSON documents (one per file, or JSON Lines) to the source queue, confirmed.
struct PublishCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "publish", abstract: "Publish JSON files (one document each, or JSON Lines) to the source queue, for local use and replays.")

    @OptionGroup var options: PipelineOptions

    @Flag(name: .long, help: "Publish each document as it is, even if it is not valid JSON (for tests of bad input).")
    var raw = false

    @Option(name: .long, help: "Queue to publish to (default: the pipeline's source queue).")
    var queue: String?

    @Option(name: .long, help: "Lane to publish to (its queue); default: the source queue.")
    var lane: String?

    func validate() throws {
        if queue != nil, lane != nil { throw ValidationError("give --queue or --lane, not both") }
    }

    @Argument(help: "Files to publish; `-` reads standard input.")
    var files: [String]

    func run() async throws {
        // Only the source is read: publishing needs neither the Cloud API's token nor Redis.
        let (source, worker) = try options.readSource()
        let settings = source.settings
        let urls = try BrokerConnection.urls(settings)
        let topology = try QueueTopology(source: settings, worker: worker)
        let queue = try self.queue ?? laneQueue(settings) ?? topology.queue
        var documents: [[UInt8]] = []
        for file in files {
            for (line, document) in try Self.documents(in: file) {
                if !raw, (try? JSONSerialization.jsonObject(with: Data(document), options: [.fragmentsAllowed])) == nil {
                    FileHandle.standardError.write(Data("\(file):\(line): not valid JSON (use --raw to publish it anyway)\n".utf8))
                    throw ExitStatus.invalid
                }
                documents.append(document)
            }
        }
        var logger = Logger(label: "outbound-worker.publish")
        logger.logLevel = .warning
        let publisher = AMQPPublisher(urls: urls, logger: logger)
        publisher.start()
        defer { publisher.stop() }
        if settings[RabbitMQSettings.declareQueues], topology.laneQueues.contains(queue) {
            // The worker's own declarations: a quorum source queue is declared quorum, with its retry and dead queues.
            do {
                try await topology.declare(on: publisher, logger: logger)
            } catch {
                FileHandle.standardError.write(Data("publish: cannot declare the queues of \(queue): \(error); nothing published\n".utf8))
                throw ExitStatus.cannotStart
            }
        }
        let batch = 500
        var published = 0
        for start in stride(from: 0, to: documents.count, by: batch) {
            let slice = documents[start..<min(start + batch, documents.count)]
            do {
                // In the file's order (SPEC 14: first come, first served within a lane); separate publishes at once reach the broker in any order.
                try await publisher.publish(inOrder: slice.map { AMQPPublisher.Message(routingKey: queue, body: $0, properties: .persistentJSON) })
            } catch {
                // The broker's refusal is not the input's fault (exit 1): say how far it got, so a second run can start there.
                FileHandle.standardError.write(Data("""
                    \npublish to \(queue) failed: \(error); the first \(published) of \(documents.count) document(s) were confirmed, \
                    of the \(slice.count) after them some may have been\n
                    """.utf8))
                throw ExitStatus.cannotStart
            }
            published += slice.count
            if documents.count >= 5000 { FileHandle.standardError.write(Data("\r\(published)/\(documents.count)".utf8)) }
        }
        if documents.count >= 5000 { FileHandle.standardError.write(Data("\n".utf8)) }
        print("published \(published) message(s) to \(queue)")
    }

    /// The queue of `--lane`, nil without it; exits 2, listing the lanes, for a lane the source does not have.
    private func laneQueue(_ settings: Settings) throws -> String? {
        guard let lane else { return nil }
        let source = try RabbitMQSettings(settings)
        guard let queue = source.queue(ofLane: lane) else {
            let lanes = source.lanes
            let known = lanes.isEmpty ? "the pipeline's source has no lanes" : "lanes: " + lanes.map(\.lane.name).joined(separator: ", ")
            FileHandle.standardError.write(Data("--lane \(lane): no such lane (\(known))\n".utf8))
            throw ExitStatus.usage
        }
        return queue
    }

    /// A file's documents with the line each starts on: the whole file when it is one JSON value,
    /// else one per non-empty line.
    static func documents(in file: String) throws -> [(line: Int, document: [UInt8])] {
        let data: Data
        if file == "-" {
            data = FileHandle.standardInput.readDataToEndOfFile()
        } else {
            guard let contents = FileManager.default.contents(atPath: file) else {
                FileHandle.standardError.write(Data("\(file): cannot read the file\n".utf8))
                throw ExitStatus.invalid
            }
            data = contents
        }
        if (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil {
            return [(1, Array(data))]
        }
        return data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).enumerated().compactMap { index, line in
            line.contains { $0 != UInt8(ascii: " ") && $0 != UInt8(ascii: "\r") && $0 != UInt8(ascii: "\t") } ? (index + 1, Array(line)) : nil
        }
    }
}
