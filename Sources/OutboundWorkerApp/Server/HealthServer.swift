import Foundation
import Hummingbird
import Metrics
import PipelineKit
import Prometheus

/// `/health`, `/ready` and `/metrics` on `HEALTH_PORT`.
enum HealthServer {
    static func application(port: Int, worker: PipelineWorker, host: PipelineHost, metrics: PrometheusCollectorRegistry) -> some ApplicationProtocol {
        let router = Router()
        let oldestWaiting = Gauge(label: "outbound_oldest_waiting_seconds")
        router.get("health") { _, _ in
            let report = await HealthReport.make(worker: worker, pipeline: host.pipeline)
            return json(report.body, status: report.status == "down" ? .serviceUnavailable : .ok)
        }
        router.get("ready") { _, _ in
            let status = worker.source.status()
            let pause = worker.pauseReason
            if status.connected, status.consuming, pause == nil {
                return json(.object(["status": .string("ready")]), status: .ok)
            }
            let reason = pause.map { "paused: \($0)" } ?? status.error ?? (status.connected ? "not consuming" : "not connected to the broker")
            return json(.object(["status": .string("not_ready"), "reason": .string(reason)]), status: .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            oldestWaiting.record(worker.oldestWait.secondsDouble)
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(bytes: metrics.emitToBuffer())))
        }
        return Application(router: router, configuration: .init(address: .hostname("0.0.0.0", port: port), serverName: "outbound-worker"))
    }

    private static func json(_ value: JSONValue, status: HTTPResponse.Status) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: value.encodedBytes())))
    }
}

/// The body of `/health`: the source's and each resource's state, paused senders, and the pipeline in use.
struct HealthReport {
    var status: String
    var body: JSONValue

    static func make(worker: PipelineWorker, pipeline: AssembledPipeline) async -> HealthReport {
        let sourceStatus = worker.source.status()
        let pause = worker.pauseReason
        var checks: [String: JSONValue] = [:]
        var sourceCheck: [String: JSONValue] = ["status": .string(sourceStatus.connected ? "up" : "down")]
        if let error = sourceStatus.error, !sourceStatus.connected { sourceCheck["error"] = .string(error) }
        if let pause { sourceCheck["paused"] = .string(pause) }
        checks[pipeline.definition.source.uses] = .object(sourceCheck)
        let paused = worker.flow.holds.active(.paused)
        let unreported = worker.unreportedOutcomes
        var degraded = pause != nil || !paused.isEmpty || unreported != nil
        if let unreported {
            checks["events"] = .object(["status": .string("down"), "error": .string(unreported.reason), "messages_held": .number(JSONNumber(unreported.count))])
        }
        let instances = pipeline.definition.resources.compactMap { resource in pipeline.resources.byName[resource.name].map { (resource.name, $0) } }
        for (name, health) in await ResourceChecks.run(instances) {
            switch health {
            case .up:
                checks[name] = .object(["status": .string("up")])
            case .down(let reason):
                degraded = true
                checks[name] = .object(["status": .string("down"), "error": .string(reason)])
            }
        }
        let status = !sourceStatus.connected ? "down" : (degraded ? "degraded" : "ok")
        var body: [String: JSONValue] = [
            "status": .string(status),
            "checks": .object(checks),
            "pipeline": .object(["name": .string(pipeline.definition.name), "digest": .string(pipeline.definition.digest)]),
        ]
        if !paused.isEmpty {
            body["paused"] = .array(paused.map { hold in
                var entry: [String: JSONValue] = ["scope": .string(hold.key), "reason": .string(hold.reason), "until": .string(UTCTimestamp.format(hold.until)),
                                                  "pauses_in_a_row": .number(JSONNumber(hold.count))]
                if !hold.covers.isEmpty { entry["senders"] = .array(hold.covers.map(JSONValue.string)) }
                return .object(entry)
            })
        }
        let templates = worker.flow.holds.active(.templatePaused)
        if !templates.isEmpty {
            body["templates_paused"] = .array(templates.map { hold in
                .object(["template": .string(String(hold.key.dropFirst("template:".count))), "reason": .string(hold.reason), "until": .string(UTCTimestamp.format(hold.until))])
            })
        }
        if let reason = pause ?? paused.first?.reason {
            body["reason"] = .string("\(pause != nil ? "consumption" : "sending") paused: \(reason)")
        } else if let unreported {
            let held = unreported.count > 0 ? "\(unreported.count) messages held until they are" : "refused lately, none recorded since; the source sends them again"
            body["reason"] = .string("outcomes not recorded (\(held)): \(unreported.reason)")
        }
        return HealthReport(status: status, body: .object(body))
    }
}
