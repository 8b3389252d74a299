import Foundation
@testable import IdempotencyPlugin
import Logging
import PipelineKit
import RedisClient
import RedisPlugin
import Testing
import TestSupport

/// The idempotency steps against the real redis-server of `scripts/test`.
@Suite(.serialized) struct RedisStoreTests {
    init() {
        _ = TestMetricsSystem.shared
    }

    static let logger: Logger = {
        var logger = Logger(label: "test.redis")
        logger.logLevel = .critical
        return logger
    }()

    static func store(port: Int = TestServices.redisPort, password: String? = nil, db: Int = 0, timeout: Duration = .milliseconds(250)) -> RedisStore {
        RedisStore(client: RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: port, password: password, database: db, commandTimeout: timeout)), logger: logger)
    }

    static func message(_ id: String) -> Message {
        Message(body: Array(#"{"internalId":"\#(id)","to":"+5511987654321","type":"text","text":{"body":"Hi"}}"#.utf8))
    }

    static func context(_ worker: String = "worker-a", clock: any WallClock = SystemWallClock()) -> StepContext {
        StepContext(stepName: "idempotency", logger: logger, workerID: worker, clock: clock, flow: FlowControl(clock: clock, logger: logger))
    }

    static func step(_ store: any IdempotencyStore, ttl: Duration = .seconds(86_400), lease: Duration = .seconds(120), prefix: String) throws -> IdempotencyStep {
        IdempotencyStep(store: store, key: try KeyTemplate("\(prefix):{internalId}"), ttl: ttl, lease: lease, onDuplicate: .ack, onInFlight: .requeue)
    }

    @Test func claimThenCompleteSetsValueAndTTL() async throws {
        let store = Self.store()
        let prefix = uniqueName("ttl")
        let step = try Self.step(store, ttl: .seconds(120), prefix: prefix)
        var message = Self.message("m1")
        #expect(try await step.run(&message, Self.context()) == .next)
        let claimed = try #require(try await store.read("\(prefix):m1"))
        #expect(claimed.value.contains(#""status":"processing""#))
        #expect(claimed.value.contains(#""owner":"worker-a""#))
        message.values[DeliveryReceiptKey.self] = "wamid.ABC"
        let mark = MarkCompletedStep(store: store, key: try KeyTemplate("\(prefix):{internalId}"), ttl: .seconds(120), keepTrying: false)
        #expect(try await mark.run(&message, Self.context()) == .next)
        let completed = try #require(try await store.read("\(prefix):m1"))
        #expect(completed.value.contains(#""status":"completed""#))
        #expect(completed.value.contains(#""wamid":"wamid.ABC""#))
        let ttl = try #require(completed.ttl)
        #expect(ttl <= .seconds(120) && ttl > .seconds(115))
        var again = Self.message("m1")
        guard case .finish(_, let reason) = try await step.run(&again, Self.context("worker-b")) else {
            Issue.record("a completed key must be a duplicate")
            return
        }
        #expect(reason.contains("wamid.ABC"))
    }

    /// A traced send's claim holds its traceparent, and so does its key in doubt — also one marked
    /// without a claim (skipped under fail_open) — and completed without a wamid, so that a status
    /// settling the key continues the send's trace; an untraced claim is the value SPEC 6 writes,
    /// and what is not a traceparent is never written into the JSON. Redis and its twin alike.
    @Test(arguments: [false, true]) func aTracedClaimHoldsItsTraceIntoDoubt(inMemory: Bool) async throws {
        let store: any IdempotencyStore = inMemory ? MemoryStore(clock: SystemWallClock()) : Self.store()
        let prefix = uniqueName("trace")
        let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        func claim(_ id: String, trace: String?) async throws -> String? {
            let result = try await store.claim("\(prefix):\(id)", owner: "w", ttl: .seconds(60), lease: .seconds(30), takeOverOwnAfter: nil,
                                               inDoubt: InDoubtPolicy(window: .seconds(300), decision: .resend), trace: trace)
            guard case .claimed(let value) = result else { return nil }
            return value
        }
        let traced = try #require(try await claim("t", trace: traceparent))
        #expect(KeyState.decode(traced)?.trace == traceparent && KeyState.decode(traced)?.status == "processing")
        for (id, claim) in [("t", traced), ("unclaimed", "")] {
            let mark = try await store.markInDoubt("\(prefix):\(id)", claim: claim, owner: "w", attempt: 2, ttl: .seconds(60), trace: traceparent)
            guard case .marked(let doubt) = mark else {
                Issue.record("not marked in doubt: \(mark)")
                return
            }
            let state = try #require(KeyState.decode(doubt))
            #expect(state.status == "in_doubt" && state.attempt == 2 && state.trace == traceparent, "\(doubt)")
        }
        #expect(KeyState.decode(KeyState.completed(wamid: nil, at: Date(), trace: traceparent).encoded())?.trace == traceparent)
        #expect(!KeyState.completed(wamid: "wamid.A", at: Date(), trace: traceparent).encoded().contains("trace"), "SPEC 6's value once the wamid is known")

        let plain = try #require(try await claim("u", trace: nil))
        #expect(plain.hasPrefix(#"{"status":"processing","owner":"w","since":""#) && plain.hasSuffix(#"Z"}"#), "\(plain)")
        let forged = try #require(try await claim("f", trace: #"x","status":"completed"#))
        #expect(KeyState.decode(forged)?.status == "processing" && !forged.contains("trace"), "\(forged)")
    }

    @Test func completionWritesTheWamidMappingWithTheKeysTTL() async throws {
        let store = Self.store()
        let prefix = uniqueName("wamid")
        let step = try Self.step(store, ttl: .seconds(300), prefix: prefix)
        var message = Self.message("w1")
        #expect(try await step.run(&message, Self.context()) == .next)
        let wamid = "wamid.\(UUID().uuidString)"
        message.values[DeliveryReceiptKey.self] = wamid
        let mark = MarkCompletedStep(store: store, key: try KeyTemplate("\(prefix):{internalId}"), ttl: .seconds(300), keepTrying: false)
        #expect(try await mark.run(&message, Self.context()) == .next)
        let place = store.wamids.place(of: wamid)
        let mapping = try #require(try await store.client.checked(["HGET", place.key, place.field]).string)
        #expect(mapping.hasSuffix(":w1"), "the field's value: the minute it expires, then the internalId")
        let minute = try #require(mapping.split(separator: ":").first.flatMap { Double($0) })
        let expires = minute * 60 - Date().timeIntervalSince1970
        #expect(expires > 295 && expires <= 360, "kept as long as the key (to the minute): \(mapping)")
    }

    /// Leases are judged by Redis's clock: a worker whose own clock runs ten minutes ahead
    /// must still see a claim made a moment ago as in flight (judged by its own clock it would take it over).
    @Test func aWorkerWithAFastClockDoesNotTakeOverAFreshClaim() async throws {
        let prefix = uniqueName("skew")
        let store = Self.store()
        let step = try Self.step(store, lease: .seconds(120), prefix: prefix)
        var first = Self.message("s1")
        #expect(try await step.run(&first, Self.context("worker-a")) == .next)
        let fast = ManualWallClock(start: Date().addingTimeInterval(600))
        var second = Self.message("s1")
        let outcome = try await step.run(&second, Self.context("worker-fast", clock: fast))
        guard case .requeue(_, let reason) = outcome else {
            Issue.record("a fresh claim must not be taken over by a worker with a fast clock, got \(outcome)")
            return
        }
        #expect(reason.contains("worker-a"))
    }

    /// A worker stuck past its lease (Redis unreachable from it) may have its key taken over;
    /// its completion then finds the other claim: counted and logged as a suspected double send, never silent.
    @Test func aCompletionAfterATakeoverIsASuspectedDoubleSend() async throws {
        let prefix = uniqueName("cas")
        let store = Self.store()
        let step = try Self.step(store, prefix: prefix)
        var message = Self.message("c1")
        #expect(try await step.run(&message, Self.context("worker-stuck")) == .next)
        let takeover = KeyState.processing(owner: "worker-other", since: Date()).encoded()
        try await store.set("\(prefix):c1", takeover, ttl: .seconds(3600))
        let before = TestMetricsSystem.counter("outbound_suspected_double_sends_total")
        message.values[DeliveryReceiptKey.self] = "wamid.stuck"
        let mark = MarkCompletedStep(store: store, key: try KeyTemplate("\(prefix):{internalId}"), ttl: .seconds(3600), keepTrying: false)
        #expect(try await mark.run(&message, Self.context("worker-stuck")) == .next)
        #expect(TestMetricsSystem.counter("outbound_suspected_double_sends_total") == before + 1)
        #expect(try await store.read("\(prefix):c1")?.value.contains(#""wamid":"wamid.stuck""#) == true, "the send that happened is recorded")

        var clean = Self.message("c2")
        #expect(try await step.run(&clean, Self.context("worker-a")) == .next)
        clean.values[DeliveryReceiptKey.self] = "wamid.clean"
        #expect(try await mark.run(&clean, Self.context("worker-a")) == .next)
        #expect(TestMetricsSystem.counter("outbound_suspected_double_sends_total") == before + 1, "a completion of its own claim is no suspect")
    }

    @Test func exactlyOneOfManyConcurrentClaimsProceeds() async throws {
        let prefix = uniqueName("race")
        let steps = [try Self.step(Self.store(), prefix: prefix), try Self.step(Self.store(), prefix: prefix)]
        let outcomes = await withTaskGroup(of: StepOutcome?.self) { group in
            for index in 0..<100 {
                group.addTask {
                    var message = Self.message("same-id")
                    return try? await steps[index % 2].run(&message, Self.context("worker-\(index)"))
                }
            }
            return await group.reduce(into: [StepOutcome?]()) { $0.append($1) }
        }
        #expect(outcomes.count == 100)
        #expect(outcomes.filter { $0 == .next }.count == 1)
        #expect(outcomes.filter { if case .requeue? = $0 { true } else { false } }.count == 99)
    }

    @Test func anExpiredLeaseIsTakenOverExactlyOnce() async throws {
        let prefix = uniqueName("lease")
        let store = Self.store()
        let old = KeyState.processing(owner: "dead-worker", since: Date().addingTimeInterval(-600)).encoded()
        try await store.set("\(prefix):stale", old, ttl: .seconds(3600))
        let young = KeyState.processing(owner: "live-worker", since: Date()).encoded()
        try await store.set("\(prefix):young", young, ttl: .seconds(3600))
        let steps = [try Self.step(Self.store(), prefix: prefix), try Self.step(Self.store(), prefix: prefix)]
        let outcomes = await withTaskGroup(of: StepOutcome?.self) { group in
            for index in 0..<20 {
                group.addTask {
                    var message = Self.message("stale")
                    return try? await steps[index % 2].run(&message, Self.context("racer-\(index)"))
                }
            }
            return await group.reduce(into: [StepOutcome?]()) { $0.append($1) }
        }
        #expect(outcomes.filter { $0 == .next }.count == 1)
        let owner = try #require(try await store.read("\(prefix):stale")).value
        #expect(owner.contains("racer-"))
        var youngMessage = Self.message("young")
        let youngOutcome = try await steps[0].run(&youngMessage, Self.context("racer-x"))
        guard case .requeue = youngOutcome else {
            Issue.record("a key younger than the lease must not be taken over, got \(youngOutcome)")
            return
        }
        #expect(try await store.read("\(prefix):young")?.value == young)
    }

    @Test func releaseDeletesOnlyOurOwnClaim() async throws {
        let prefix = uniqueName("release")
        let store = Self.store()
        let step = try Self.step(store, prefix: prefix)
        var message = Self.message("r1")
        #expect(try await step.run(&message, Self.context()) == .next)
        await step.undo(message, Self.context())
        #expect(try await store.read("\(prefix):r1") == nil)

        var second = Self.message("r2")
        #expect(try await step.run(&second, Self.context()) == .next)
        let someoneElse = KeyState.processing(owner: "other", since: Date()).encoded()
        try await store.set("\(prefix):r2", someoneElse, ttl: .seconds(60))
        await step.undo(second, Self.context())
        #expect(try await store.read("\(prefix):r2")?.value == someoneElse)
    }

    /// The `redis` resource's settings for `redis` (host, port, its password, then `database`, timeouts, pool).
    private static func settings(of redis: ScratchRedis, database: Int, poolSize: Int) -> Settings {
        Settings([
            ResolvedSetting(name: "host", value: .string("127.0.0.1"), origin: .pluginDefault, location: nil, secrecy: .none),
            ResolvedSetting(name: "port", value: .integer(redis.port), origin: .pluginDefault, location: nil, secrecy: .none),
            ResolvedSetting(name: "password", value: .string(redis.password ?? ""), origin: .pluginDefault, location: nil, secrecy: .secret),
            ResolvedSetting(name: "db", value: .integer(database), origin: .pluginDefault, location: nil, secrecy: .none),
            ResolvedSetting(name: "command_timeout", value: .duration(.milliseconds(250)), origin: .pluginDefault, location: nil, secrecy: .none),
            ResolvedSetting(name: "connect_timeout", value: .duration(.seconds(1)), origin: .pluginDefault, location: nil, secrecy: .none),
            ResolvedSetting(name: "pool_size", value: .integer(poolSize), origin: .pluginDefault, location: nil, secrecy: .none),
        ])
    }

    /// A Redis at `maxclients` answers a new connection's AUTH with `ERR max number of clients
    /// reached`: that was read as refused credentials, and a worker restarted then would not start.
    @Test func aServerAtMaxClientsIsNotARefusedPassword() async throws {
        let redis = try ScratchRedis(password: "s3cret")
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        let holder = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: redis.port, password: "s3cret", poolSize: 1))
        try await holder.connect()
        _ = try await holder.send(["CONFIG", "SET", "maxclients", "1"])
        let store = try await RedisStore.connect(settings: Self.settings(of: redis, database: 0, poolSize: 1), logger: Self.logger)
        guard case .down = await store.health() else { Issue.record("a server refusing clients is down"); return }
        _ = try await holder.send(["CONFIG", "SET", "maxclients", "10000"])
        try await poll("the store to connect once the server takes clients") { await store.health() == .up }
    }

    @Test func passwordAndDatabaseAreUsed() async throws {
        let redis = try ScratchRedis(password: "s3cret")
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        let settings = Self.settings(of: redis, database: 3, poolSize: 2)
        let store = try await RedisStore.connect(settings: settings, logger: Self.logger)
        try await store.set("db3-key", "value", ttl: .seconds(60))
        #expect(try redis.cli(["-n", "3", "get", "db3-key"]) == "value")
        #expect(try redis.cli(["-n", "0", "exists", "db3-key"]) == "0")

        var wrong = settings.entries
        wrong[2].value = .string("wrong")
        do {
            _ = try await RedisStore.connect(settings: Settings(wrong), logger: Self.logger)
            Issue.record("a wrong password must fail at start")
        } catch let error as RedisError {
            #expect(error.description.contains("refused the credentials"))
            #expect(error.description.contains("AUTH failed"))
            #expect(!error.description.contains("wrong"))
        }
    }

    /// Through the Sentinels of the cluster profile: commands reach the master they name; a wrong
    /// Sentinel password or an unknown master name is a clear error, not a hang.
    @Test func sentinelLeadsToTheMasterAndNamesWhatIsWrong() async throws {
        let sentinels = TestServices.sentinels.split(separator: ",").compactMap { item -> RedisAddress? in
            let parts = item.split(separator: ":")
            return parts.count == 2 ? Int(parts[1]).map { RedisAddress(host: String(parts[0]), port: $0) } : nil
        }
        func client(master: String = TestServices.sentinelMaster, password: String? = TestServices.sentinelPassword) -> RedisClient {
            RedisClient(configuration: RedisConfiguration(host: "192.0.2.1", port: 1, sentinel: RedisSentinelConfiguration(sentinels: sentinels, masterName: master, password: password)))
        }
        let key = uniqueName("sentinel")
        _ = try await client().send(["SET", key, "through-sentinel", "EX", "60"])
        let master = try TestServices.run("redis-cli", ["-p", String(sentinels[0].port), "-a", TestServices.sentinelPassword, "--no-auth-warning",
                                                        "sentinel", "get-master-addr-by-name", TestServices.sentinelMaster]).output.split(separator: "\n")
        #expect(master.count == 2)
        let onMaster = try TestServices.run("redis-cli", ["-p", String(master.last ?? ""), "get", key]).output
        #expect(onMaster.contains("through-sentinel"), "written on the master Sentinel names (host and port of the configuration unused)")

        await #expect { _ = try await client(password: "wrong").send(["PING"]) } throws: { error in
            (error as? RedisError).map { $0.description.contains("sentinel_password") } ?? false
        }
        await #expect { _ = try await client(master: "no-such-master").send(["PING"]) } throws: { error in
            (error as? RedisError).map { $0.description.contains("`no-such-master`") } ?? false
        }
    }

    /// A Sentinel that names a replica as the master (stale: cut off, or restarted with an old
    /// view) comes first in the list: the client goes where most Sentinels point instead of
    /// retrying the replica for ever.
    ///
    /// The stale Sentinel watches a replica of its own, one the real Sentinels do not know (it
    /// replicates from a port where nothing listens, so it stays a replica). When it watched one
    /// of the real replicas, it heard the real Sentinels' hellos there; once an earlier test's
    /// failover had raised their config epoch above its 0, it took their master within half a
    /// second, often before the test first asked it (seen in CI; reproduced by a failover first).
    @Test func aStaleSentinelDoesNotKeepTheClientOnAReplica() async throws {
        let real = TestServices.sentinels.split(separator: ",").compactMap { item -> RedisAddress? in
            let parts = item.split(separator: ":")
            return parts.count == 2 ? Int(parts[1]).map { RedisAddress(host: String(parts[0]), port: $0) } : nil
        }
        let isolated = try ScratchRedis(replicaOf: freePort())
        try await isolated.start()
        defer { Task { try? await isolated.stop() } }
        #expect(try isolated.cli(["role"]).hasPrefix("slave"))
        let replica = isolated.port
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("stale-sentinel-\(UUID().uuidString.prefix(6))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let port = freePort()
        try """
            port \(port)
            bind 127.0.0.1
            daemonize yes
            dir \(folder.path)
            pidfile \(folder.path)/sentinel.pid
            logfile \(folder.path)/sentinel.log
            requirepass \(TestServices.sentinelPassword)
            sentinel monitor \(TestServices.sentinelMaster) 127.0.0.1 \(replica) 1
            """.write(to: folder.appendingPathComponent("sentinel.conf"), atomically: true, encoding: .utf8)
        let started = try TestServices.run("redis-sentinel", [folder.appendingPathComponent("sentinel.conf").path])
        #expect(started.status == 0, "\(started.output)")
        defer { _ = try? TestServices.run("redis-cli", ["-p", String(port), "-a", TestServices.sentinelPassword, "--no-auth-warning", "shutdown"]) }
        try await poll("the stale Sentinel up") {
            (try TestServices.run("redis-cli", ["-p", String(port), "-a", TestServices.sentinelPassword, "--no-auth-warning",
                                                "sentinel", "get-master-addr-by-name", TestServices.sentinelMaster]).output).contains("\(replica)")
        }
        let client = RedisClient(configuration: RedisConfiguration(host: "192.0.2.1", port: 1, sentinel: RedisSentinelConfiguration(
            sentinels: [RedisAddress(host: "127.0.0.1", port: port)] + real, masterName: TestServices.sentinelMaster, password: TestServices.sentinelPassword)))
        let key = uniqueName("stale")
        _ = try await client.send(["SET", key, "on-the-master", "EX", "60"])
        #expect(try await client.send(["GET", key]).string == "on-the-master")
    }

    @Test func outageFailOpenAndRecoveryInTheSameProcess() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        let store = Self.store(port: redis.port)
        let prefix = uniqueName("outage")
        let step = try Self.step(store, prefix: prefix)
        let errorsBefore = TestMetricsSystem.counter("outbound_redis_errors_total")
        try await redis.stop()
        var message = Self.message("o1")
        await #expect(throws: StepFailure.self) { try await step.run(&message, Self.context()) }
        #expect(TestMetricsSystem.counter("outbound_redis_errors_total") > errorsBefore)
        try await redis.start()
        try await poll("dedup to work again after redis returns") {
            var fresh = Self.message("o2")
            return (try? await step.run(&fresh, Self.context())) == .next
        }
        var duplicate = Self.message("o2")
        let second = try await step.run(&duplicate, Self.context("other"))
        guard case .requeue = second else {
            Issue.record("the second claim of o2 must see the first, got \(second)")
            return
        }
        try await redis.stop()
    }

    @Test func slowRedisCountsAsUnavailable() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        let store = Self.store(port: redis.port, timeout: .milliseconds(100))
        try await store.set("warm", "1", ttl: .seconds(10))
        // DEBUG SLEEP through a connection of its own, sent at once from its hiredis thread: a redis-cli
        // process started from the cooperative pool could start seconds late on a busy 2-core machine
        // (seen: no command timed out within 3 s because the sleep had not begun).
        let sleeperClient = RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: redis.port, commandTimeout: .seconds(5), poolSize: 1))
        let sleeper = Task { _ = try? await sleeperClient.send(["DEBUG", "SLEEP", "1"]) }
        // Commands succeed until the server falls asleep; the first one after that must time out.
        var timedOut = false
        let deadline = ContinuousClock.now + .seconds(3)
        while !timedOut, ContinuousClock.now < deadline {
            let started = ContinuousClock.now
            do {
                try await store.set("slow", "1", ttl: .seconds(10))
            } catch {
                timedOut = true
                #expect(ContinuousClock.now - started < .milliseconds(500), "given up after the 100 ms timeout, not after the 1 s sleep")
            }
        }
        #expect(timedOut, "a command against a sleeping Redis must time out")
        await sleeper.value
        try await poll("redis to answer again") { (try? await store.set("after", "1", ttl: .seconds(10))) != nil }
    }

    /// Claims `id` as worker-a (orphan age 400 ms) until one claim is sent while the server sleeps:
    /// it runs when Redis wakes, its answer long given up. Returns once the key holds that claim.
    static func loseAClaim(of id: String, on redis: ScratchRedis, onInFlight: IdempotencyStep.InFlightPolicy = .requeue, orphanAge: Duration = .milliseconds(400)) async throws
        -> (store: RedisStore, step: IdempotencyStep, prefix: String, message: Message) {
        let store = Self.store(port: redis.port, timeout: .milliseconds(100))
        let prefix = uniqueName("lost")
        let step = IdempotencyStep(store: store, key: try KeyTemplate("\(prefix):{internalId}"), ttl: .seconds(86_400), lease: .seconds(120),
                                   onDuplicate: .ack, onInFlight: onInFlight, orphanAge: orphanAge)
        try await store.set("warm", "1", ttl: .seconds(10))
        // The scripts known to this fresh Redis first: a claim goes by EVALSHA, and one Redis first
        // meets while asleep answers NOSCRIPT when it wakes — it never ran, and the lost claim this
        // sets up never comes (a race with the sleep: the first claim before it loaded the scripts).
        var warm = Self.message("warm-\(id)")
        _ = try await step.run(&warm, Self.context("worker-a"))
        await step.undo(warm, Self.context("worker-a"))
        let sleeper = Task.detached { _ = try? redis.cli(["debug", "sleep", "1"]) }
        var lost: Message?
        let deadline = ContinuousClock.now + .seconds(5)
        while lost == nil, ContinuousClock.now < deadline {
            var message = Self.message(id)
            do {
                _ = try await step.run(&message, Self.context("worker-a"))
                await step.undo(message, Self.context("worker-a"))
            } catch {
                lost = message
            }
        }
        let message = try #require(lost, "a claim against a sleeping Redis must time out")
        await sleeper.value
        try await poll("the lost claim to have run") { (try? await store.read("\(prefix):\(id)"))?.value.contains(#""owner":"worker-a""#) == true }
        return (store, step, prefix, message)
    }

    /// Claims `id` on worker B (its retry, carrying `carried`) while worker A goes on claiming other
    /// messages — each claim of A's that Redis answers releases A's lost claims that are due; returns the message that claimed.
    static func claimOnWorkerB(_ id: String, carrying carried: [String: String] = [:], while step: IdempotencyStep) async throws -> Message {
        var number = 0
        var retry = Self.message(id)
        try await poll("worker B's retry claims the key", timeout: .seconds(10)) {
            number += 1
            var other = Self.message("other-\(number)")
            _ = try await step.run(&other, Self.context("worker-a"))
            await step.undo(other, Self.context("worker-a"))
            retry = Self.message(id)
            retry.carried = carried
            return try await step.run(&retry, Self.context("worker-b")) == .next
        }
        return retry
    }

    /// Under `on_in_flight: ack` the retry of a message whose claim went unanswered found the key
    /// `processing` by that very claim, took it for a copy in flight and acknowledged it: the message
    /// was never sent (audit). Its retry now waits, here and on another worker, and is sent once the
    /// claim is taken over.
    @Test func theRetryOfAnUnansweredClaimIsNotDroppedAsInFlight() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        // An orphan age long enough that worker A's retry below comes before it even on a busy machine.
        // The retry carries what the failed run noted (`carried` goes with the message through the retry
        // queue); the failed run itself has ended (fail_closed), and with it its message.
        let (step, carried) = try await { () async throws -> (IdempotencyStep, [String: String]) in
            let lost = try await Self.loseAClaim(of: "m1", on: redis, onInFlight: .ack, orphanAge: .seconds(3))
            return (lost.step, lost.message.carried)
        }()
        for worker in ["worker-a", "worker-b"] {
            var retry = Self.message("m1")
            retry.carried = carried
            let outcome = try await step.run(&retry, Self.context(worker))
            guard case .requeue = outcome else {
                Issue.record("the retry on \(worker) must wait for the claim, not end as \(outcome)")
                return
            }
        }
        // A copy that never lost a claim is still a copy in flight: acknowledged, as configured.
        var copy = Self.message("m1")
        let copyOutcome = try await step.run(&copy, Self.context("worker-b"))
        guard case .finish(as: let label, _) = copyOutcome, label == .duplicate else {
            Issue.record("a copy of a message in flight is acknowledged as a duplicate under on_in_flight: ack, not \(copyOutcome)")
            return
        }
        var retry = Self.message("m1")
        try await poll("the retry sent once the orphaned claim is taken over", timeout: .seconds(10)) {
            retry = Self.message("m1")
            retry.carried = carried
            return try await step.run(&retry, Self.context("worker-a")) == .next
        }
        await step.undo(retry, Self.context("worker-a"))
    }

    /// Under `fail_open` a message whose claim went unanswered goes on without it and may wait (pacing,
    /// holds) for minutes; its lost claim was released after the orphan age all the same, and a copy
    /// of the message then claimed and sent it while this one still waited to send (audit). The claim
    /// now stays held while the message is here, and is released once it has gone.
    @Test func aLostClaimIsKeptWhileItsMessageGoesOnWithoutItAndReleasedOnceItHasGone() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        var lost: (store: RedisStore, step: IdempotencyStep, prefix: String, message: Message)? = try await Self.loseAClaim(of: "m1", on: redis)
        let (store, step, prefix) = try #require(lost.map { ($0.store, $0.step, $0.prefix) })
        // Well past the orphan age (400 ms), worker A claims other messages (each answered claim releases what is due).
        try await Task.sleep(for: .seconds(1))
        for number in 1...3 {
            var other = Self.message("other-\(number)")
            _ = try await step.run(&other, Self.context("worker-a"))
            await step.undo(other, Self.context("worker-a"))
        }
        #expect(try await store.read("\(prefix):m1")?.value.contains(#""owner":"worker-a""#) == true, "kept while its message is here")
        var copy = Self.message("m1")
        guard case .requeue = try await step.run(&copy, Self.context("worker-b")) else {
            Issue.record("a copy must not claim the key while the message that lost its claim may still send it")
            return
        }
        // The message has gone (sent, or back to the source): the claim is released, and the copy goes.
        lost = nil
        let retry = try await Self.claimOnWorkerB("m1", while: step)
        await step.undo(retry, Self.context("worker-b"))
    }

    /// A claim whose release by `undo` failed (Redis slow just then, after a send that failed) stayed
    /// `processing` for the whole lease: the message's retry was acknowledged as in flight under
    /// `on_in_flight: ack` — never sent — and requeued for the lease (2 min) under `requeue` (audit).
    @Test func aClaimWhoseReleaseFailedIsNeitherDroppedNorHeldForTheLease() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        // One connection: once a command has found it broken and made it anew, the next ones use it.
        let store = RedisStore(client: RedisClient(configuration: RedisConfiguration(host: "127.0.0.1", port: redis.port, poolSize: 1)), logger: Self.logger)
        let prefix = uniqueName("unreleased")
        let step = IdempotencyStep(store: store, key: try KeyTemplate("\(prefix):{internalId}"), ttl: .seconds(86_400), lease: .seconds(120),
                                   onDuplicate: .ack, onInFlight: .ack, orphanAge: .milliseconds(400))
        var first = Self.message("m1")
        #expect(try await step.run(&first, Self.context("worker-a")) == .next)
        // The send failed; its undo meets Redis restarting (its data kept): the release never runs.
        _ = try redis.cli(["save"])
        try await redis.stop()
        await step.undo(first, Self.context("worker-a"))
        try await redis.start()
        var kept: String?
        try await poll("Redis answering again") {
            do {
                kept = try await store.read("\(prefix):m1")?.value ?? "no key"
                return true
            } catch {
                return false
            }
        }
        #expect(kept?.contains(#""owner":"worker-a""#) == true, "the release did not reach Redis: \(kept ?? "")")

        var retry = Self.message("m1")
        retry.carried = first.carried
        let outcome = try await step.run(&retry, Self.context("worker-b"))
        guard case .requeue = outcome else {
            Issue.record("the retry must wait for its own claim to be released, not end as \(outcome)")
            return
        }
        // Worker A releases it once Redis answers again (on its next claim): the retry is sent well before the lease.
        let failedAt = ContinuousClock.now
        retry = try await Self.claimOnWorkerB("m1", carrying: first.carried, while: step)
        #expect(ContinuousClock.now - failedAt < .seconds(10))
        await step.undo(retry, Self.context("worker-b"))
    }

    /// A claim whose answer was lost, and whose message's retry then goes to another worker: that
    /// worker sees the key `processing` by the first and, before, requeued it for the whole lease (seen
    /// in the soak: one message stuck 2 minutes after Redis was slow). The first worker releases its
    /// lost claim once it is older than a send can take, on its next claim that Redis answers.
    @Test func aClaimWhoseAnswerWasLostIsReleasedForAnotherWorkersRetry() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        let (store, step, prefix, _) = try await Self.loseAClaim(of: "m1", on: redis)
        var early = Self.message("m1")
        guard case .requeue = try await step.run(&early, Self.context("worker-b")) else {
            Issue.record("a fresh claim of another worker is in flight")
            return
        }
        // Worker A goes on with other messages; worker B's retry claims m1 well before the 120 s lease.
        let lostAt = ContinuousClock.now
        let retry = try await Self.claimOnWorkerB("m1", while: step)
        #expect(ContinuousClock.now - lostAt < .seconds(10))
        #expect(try await store.read("\(prefix):m1")?.value.contains(#""owner":"worker-b""#) == true)
        await step.undo(retry, Self.context("worker-b"))
    }

    /// A claim that runs in Redis but whose answer misses `command_timeout` leaves the key
    /// `processing` by this very worker. Its retry must take it over at once: under
    /// `fail_closed` it otherwise requeued against itself for the whole lease (2 min in prod).
    @Test func aClaimWhoseAnswerWasLostIsTakenOverByItsOwnRetry() async throws {
        let redis = try ScratchRedis()
        try await redis.start()
        defer { Task { try? await redis.stop() } }
        let (_, step, _, _) = try await Self.loseAClaim(of: "m1", on: redis)
        // Not at once (a send that went on without its claim under fail_open may still be under way),
        // but after `orphanAge` — never after the whole lease.
        var retry = Self.message("m1")
        let lostAt = ContinuousClock.now
        try await poll("the worker's own orphaned claim taken over", timeout: .seconds(10)) {
            retry = Self.message("m1")
            return try await step.run(&retry, Self.context()) == .next
        }
        #expect(ContinuousClock.now - lostAt < .seconds(10), "taken over after its orphan age, not after the 120 s lease")
        // Another worker still sees it in flight, and so does a second copy while this one holds it.
        var other = Self.message("m1")
        guard case .requeue = try await step.run(&other, Self.context("worker-b")) else {
            Issue.record("another worker must not take over a fresh claim")
            return
        }
        var copy = Self.message("m1")
        guard case .requeue = try await step.run(&copy, Self.context()) else {
            Issue.record("a second copy must not take over the key its first copy holds")
            return
        }
        await step.undo(retry, Self.context())
    }
}
