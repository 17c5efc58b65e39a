import Agent
import Foundation
import Synchronization
import LocalCluster
import PostgresControl
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Real agents managing real PostgreSQL 15 servers on loopback: bootstrap, streaming
/// replication, failover after SIGKILL, fencing of a frozen agent's primary, rejoin.
@Suite(.serialized) struct PostgresClusterTests {
    /// The nodes answering 200 on `path`, polled until `condition` holds (bounded).
    static func nodes(answering path: String, in cluster: LocalCluster, among names: [String]? = nil,
                      within seconds: Double, until condition: ([String]) -> Bool) async -> [String] {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var answering: [String] = []
        repeat {
            answering = []
            for name in names ?? cluster.names where await cluster.status(of: name, path: path) == 200 { answering.append(name) }
            if condition(answering) { return answering }
            try? await Task.sleep(for: .milliseconds(50))
        } while ContinuousClock.now < deadline
        return answering
    }

    /// Polls `body` until it returns a value (bounded).
    static func eventually<T>(within seconds: Double, _ body: () throws -> T?) async -> T? {
        let deadline = ContinuousClock.now + .seconds(seconds)
        repeat {
            if let value = try? body() { return value }
            try? await Task.sleep(for: .milliseconds(50))
        } while ContinuousClock.now < deadline
        return nil
    }

    /// Starts every agent and waits (bounded) for one writable primary and two streaming replicas.
    static func settled(_ cluster: LocalCluster) async throws -> (primary: String, replicas: [String]) {
        try cluster.startAll()
        let primaries = await nodes(answering: "/primary", in: cluster, within: 90) { $0.count == 1 }
        try #require(primaries.count == 1, "no single primary: \(primaries)\n\(cluster.log(of: cluster.names[0]))")
        let replicas = cluster.names.filter { $0 != primaries[0] }
        let streaming = await nodes(answering: "/replica", in: cluster, among: replicas, within: 60) { $0.count == 2 }
        try #require(streaming.count == 2, "replicas not streaming: \(streaming)\n\(cluster.log(of: replicas[0]))")
        return (primaries[0], replicas)
    }

    static func history(of name: String, in cluster: LocalCluster) async -> [HistoryView] {
        guard let port = cluster.apiPorts[name],
              let client = try? APIClient(tlsDirectory: cluster.directory + "/tls"),
              let answer = try? await client.get(host: "127.0.0.1", port: port, path: "/history", timeout: .seconds(2)),
              answer.status == 200 else { return [] }
        return (try? JSONDecoder().decode([HistoryView].self, from: Data(answer.body))) ?? []
    }

    /// A newcomer's config names a data_dir whose parent does not exist yet (the tutorial's
    /// `data`): the agent creates the parents traversable, so PostgreSQL's user reaches its data.
    @Test func theParentsOfANewDataDirectoryLetPostgreSQLsUserThrough() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true)
        defer { cluster.tearDown() }
        let text = try String(contentsOfFile: cluster.configPath, encoding: .utf8)
        try text.replacingOccurrences(of: "data_dir: data\n", with: "data_dir: fresh/data\n")
            .write(toFile: cluster.configPath, atomically: true, encoding: .utf8)
        try cluster.start("node1")
        let deadline = Date().addingTimeInterval(20)
        while !cluster.log(of: "node1").contains("agent started"), cluster.running.contains("node1"), Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(cluster.log(of: "node1").contains("agent started"), "\(cluster.log(of: "node1"))")
        for parent in ["fresh", "fresh/data"] {
            let attributes = try FileManager.default.attributesOfItem(atPath: cluster.directory + "/" + parent)
            #expect((attributes[.posixPermissions] as? Int) == 0o711, "\(parent): \(attributes[.posixPermissions] ?? "?")")
        }
    }

    /// No silent trust: without a passfile or PGPASSWORD the agent refuses to start, unless the
    /// config says `insecure_trust: true`, which it then says loudly (log and status).
    @Test func withoutPasswordsTheAgentStartsOnlyWhenTrustIsAskedFor() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true)
        defer { cluster.tearDown() }
        let trusting = try String(contentsOfFile: cluster.configPath, encoding: .utf8)
        #expect(trusting.contains("  insecure_trust: true\n"))
        try trusting.replacingOccurrences(of: "  insecure_trust: true\n", with: "")
            .write(toFile: cluster.configPath, atomically: true, encoding: .utf8)
        let refused = try cluster.run(["agent", "--config", cluster.configPath, "--node", "node1"], environment: ["PGPASSWORD": ""], includeErrors: true)
        #expect(refused.status == 1 && refused.output.contains("no password for PostgreSQL's superuser and replication user"), "\(refused.output)")

        try trusting.write(toFile: cluster.configPath, atomically: true, encoding: .utf8)
        try cluster.startAll()
        #expect(await cluster.agreedLeader() != nil)
        #expect(cluster.log(of: "node2").contains("postgresql.insecure_trust: the nodes' hosts may connect"), "\(cluster.log(of: "node2"))")
        let status = try cluster.run(["status", "--config", cluster.configPath], includeErrors: true)
        #expect(status.output.contains("Security: PostgreSQL lets the nodes' hosts in without a password"), "\(status.output)")
        // With PGPASSWORD the node uses passwords although the flag is set, and its view does
        // not claim trust.
        cluster.stop("node3", signal: SIGTERM)
        try cluster.start("node3", environment: ["PGPASSWORD": "s3cret"])
        var claimed: Bool?? = .none
        for _ in 0..<300 {
            if let own = await cluster.view(of: "node3") { claimed = .some(own.insecureTrust); break }
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(claimed == .some(nil), "node3's view: insecure_trust \(String(describing: claimed))")
        #expect(await cluster.view(of: "node1")?.insecureTrust == true)
    }

    /// As root the agent writes its Raft state, lock and markers under data_dir: a directory on
    /// the way that another user controls could be swapped for a link, so it refuses to start.
    @Test func asRootTheDataDirectoryMustBeRootsAlone() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true)
        defer { cluster.tearDown() }
        chown(cluster.directory, 65_534, 65_534)
        try cluster.start("node1")
        let deadline = Date().addingTimeInterval(15)
        while cluster.running.contains("node1"), !cluster.log(of: "node1").contains("agent started"), Date() < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        let log = cluster.log(of: "node1")
        if geteuid() == 0 {
            #expect(!cluster.running.contains("node1"), "the agent runs on a path another user controls")
            #expect(log.contains("is not safe for an agent running as root: \(cluster.directory) belongs to uid 65534, not root"), "\(log)")
        } else {
            // Not root: the rule does not apply; the agent starts.
            #expect(log.contains("agent started") && !log.contains("is not safe"), "\(log)")
        }
    }

    @Test func bootstrapReplicateFailOverAndRejoin() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true)
        defer { cluster.tearDown() }
        // Bootstrap: exactly one writable primary, the other two stream from it.
        let (first, replicas) = try await Self.settled(cluster)
        let writer = try PostgresConnection(cluster.conninfo(of: first))
        try writer.query("CREATE TABLE writes (id bigint PRIMARY KEY, note text)")
        try writer.query("INSERT INTO writes VALUES (1, 'before failover')")
        for replica in replicas {
            let seen = await Self.eventually(within: 60) { () -> Bool? in
                let connection = try PostgresConnection(cluster.conninfo(of: replica))
                return try connection.value("SELECT count(*) FROM writes WHERE id = 1") == "1" ? true : nil
            }
            #expect(seen == true, "row 1 never reached \(replica)\n\(cluster.log(of: replica))")
            #expect(await cluster.status(of: replica, path: "/replica") == 200)
            #expect(await cluster.status(of: replica, path: "/primary") == 503)
            #expect(await cluster.status(of: replica, path: "/read-only") == 200)
            #expect(await cluster.status(of: replica, path: "/replica?lag=1MB") == 200)
            #expect(await cluster.status(of: replica, path: "/replica?lag=lots") == 400)
            // HEAD and OPTIONS answer like GET: HAProxy configs written for Patroni check with them.
            for method in ["HEAD", "OPTIONS"] {
                #expect(await cluster.status(of: replica, path: "/replica", method: method) == 200, "\(method) /replica")
                #expect(await cluster.status(of: replica, path: "/primary", method: method) == 503, "\(method) /primary")
            }
        }
        #expect(await cluster.status(of: first, path: "/replica") == 503)
        for method in ["HEAD", "OPTIONS"] {
            #expect(await cluster.status(of: first, path: "/primary", method: method) == 200, "\(method) /primary")
            #expect(await cluster.status(of: first, path: "/health", method: method) == 200, "\(method) /health")
        }
        let bootstrapped = await Self.history(of: first, in: cluster)
        #expect(bootstrapped.map(\.epoch) == [1] && bootstrapped.first?.primary == first, "\(bootstrapped)")
        #expect(bootstrapped.first?.timeline == 2, "the first primary runs on timeline 2 (promoted out of standby mode)")
        // A replica refuses writes.
        let replicaConnection = try PostgresConnection(cluster.conninfo(of: replicas[0]))
        #expect(throws: PostgresError.self) { try replicaConnection.query("INSERT INTO writes VALUES (99, 'on a replica')") }
        writer.close()

        // SIGKILL of the primary's agent: its PostgreSQL goes with it, a replica takes over.
        cluster.stop(first, signal: SIGKILL)
        let gone = await Self.eventually(within: 10) { () -> Bool? in
            (try? PostgresConnection(cluster.conninfo(of: first))) == nil ? true : nil
        }
        #expect(gone == true, "the killed agent's PostgreSQL still accepts connections")
        // Meanwhile the read pool never empties: until one of them is promoted, both replicas
        // keep answering /replica, although their upstream is gone (Patroni-style load
        // balancers send reads there during the failover).
        var emptyReadPool = 0
        var successors: [String] = []
        let failoverDeadline = ContinuousClock.now + .seconds(30)
        while successors.count != 1, ContinuousClock.now < failoverDeadline {
            successors = []
            var readable: [String] = []
            for replica in replicas {
                if await cluster.status(of: replica, path: "/primary") == 200 { successors.append(replica) }
                if await cluster.status(of: replica, path: "/replica?lag=16MB") == 200 { readable.append(replica) }
            }
            if readable.isEmpty, successors.isEmpty { emptyReadPool += 1 }
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(emptyReadPool == 0, "no replica answered /replica in \(emptyReadPool) polls during the failover")
        try #require(successors.count == 1, "no new primary: \(successors)\n\(cluster.log(of: replicas[0]))\n\(cluster.log(of: replicas[1]))")
        let second = successors[0]
        let newWriter = try #require(await Self.eventually(within: 10) { try PostgresConnection(cluster.conninfo(of: second)) })
        try newWriter.query("INSERT INTO writes VALUES (2, 'after failover')")
        #expect(try newWriter.value("SELECT count(*) FROM writes") == "2")
        let other = replicas.first { $0 != second } ?? second
        let followed = await Self.eventually(within: 30) { () -> Bool? in
            let connection = try PostgresConnection(cluster.conninfo(of: other))
            return try connection.value("SELECT count(*) FROM writes WHERE id = 2") == "1" ? true : nil
        }
        #expect(followed == true, "\(other) does not follow the new primary \(second)\n\(cluster.log(of: other))")

        // The old primary returns as a replica of the new one, holding the new row.
        try cluster.start(first)
        let rejoined = await Self.eventually(within: 60) { () -> Bool? in
            let connection = try PostgresConnection(cluster.conninfo(of: first))
            return try connection.value("SELECT count(*) FROM writes WHERE id = 2") == "1" ? true : nil
        }
        #expect(rejoined == true, "the old primary did not rejoin\n\(cluster.log(of: first))")
        let asReplica = await Self.nodes(answering: "/replica", in: cluster, among: [first], within: 30) { $0 == [first] }
        #expect(asReplica == [first])
        let history = await Self.history(of: second, in: cluster)
        #expect(history.map(\.epoch) == [1, 2], "\(history)")
        #expect(history.last?.primary == second)
        // Its restart replays the bootstrap it had committed without announcing it again (the
        // promotion it missed while down is news to it, and is logged).
        let sinceRestart = cluster.log(of: first).components(separatedBy: "agent started").last ?? ""
        #expect(!sinceRestart.contains("cluster bootstrapped") && !sinceRestart.contains("epoch=1 "), "\(sinceRestart)")
    }

    /// SIGSTOP of the primary's agent: its fence keeper stops PostgreSQL when the lease deadline
    /// passes unrenewed, before the majority elects and promotes another node. Writes are tried
    /// on every node in a loop; the old primary must never acknowledge one after a new primary
    /// has. On SIGCONT the frozen agent finds itself deposed and rejoins as a replica.
    @Test func frozenPrimaryAgentIsFencedBeforeAnotherNodeIsPromoted() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true)
        defer { cluster.tearDown() }
        // Freeze only once both replicas stream: before that there is no candidate to promote.
        let (old, others) = try await Self.settled(cluster)
        try PostgresConnection(cluster.conninfo(of: old)).query("CREATE TABLE writes (id bigint PRIMARY KEY, node text)")
        let pid = try #require(cluster.pid(of: old))

        var connections: [String: PostgresConnection] = [:]
        func write(_ id: Int, on node: String) -> Bool {
            if connections[node] == nil { connections[node] = try? PostgresConnection(cluster.conninfo(of: node)) }
            guard let connection = connections[node] else { return false }
            do {
                try connection.query("INSERT INTO writes VALUES (\(id), '\(node)')")
                return true
            } catch {
                if error.sqlState == nil { connections[node] = nil }  // connection broken, not a refusal
                return false
            }
        }
        #expect(write(0, on: old))
        kill(pid, SIGSTOP)
        let frozenAt = ContinuousClock.now
        var lastOldWrite: ContinuousClock.Instant?
        var firstNewWrite: (node: String, at: ContinuousClock.Instant)?
        var id = 1
        let deadline = ContinuousClock.now + .seconds(30)
        while firstNewWrite == nil || ContinuousClock.now < firstNewWrite!.at + .seconds(1), ContinuousClock.now < deadline {
            id += 1
            if write(id, on: old) { lastOldWrite = .now }
            for node in others {
                id += 1
                if write(id, on: node), firstNewWrite == nil { firstNewWrite = (node, .now) }
            }
            try await Task.sleep(for: .milliseconds(10))
        }
        kill(pid, SIGCONT)
        let successor = try #require(firstNewWrite, "no other node accepted a write within 30 s")
        if let lastOldWrite {
            #expect(lastOldWrite < successor.at, "the frozen node acknowledged a write after \(successor.node) did")
            print("frozen primary's last acknowledged write \(lastOldWrite - frozenAt) after SIGSTOP; first write on \(successor.node) after \(successor.at - frozenAt)")
        }
        // Resumed, the old agent is deposed: its node rejoins as a replica of the new primary.
        let marker = 1_000_000
        #expect(write(marker, on: successor.node))
        let rejoined = await Self.eventually(within: 60) { () -> Bool? in
            let connection = try PostgresConnection(cluster.conninfo(of: old))
            return try connection.value("SELECT count(*) FROM writes WHERE id = \(marker)") == "1" ? true : nil
        }
        #expect(rejoined == true, "the resumed node did not rejoin\n\(cluster.log(of: old))")
        #expect(await cluster.status(of: old, path: "/primary") == 503)
    }

    /// A writer on its own thread: inserts ids on one node's PostgreSQL every few milliseconds
    /// until stopped or refused; remembers every acknowledged id.
    final class Writer: Sendable {
        let acknowledged = Mutex<[Int]>([])
        let stopped = Atomic<Bool>(false)
        let done = DispatchSemaphore(value: 0)

        init(conninfo: String, firstID: Int) {
            Thread.detachNewThread { [self] in
                defer { done.signal() }
                guard let connection = try? PostgresConnection(conninfo) else { return }
                var id = firstID
                while !stopped.load(ordering: .relaxed) {
                    guard (try? connection.query("INSERT INTO writes VALUES (\(id), 'writer')")) != nil else { return }
                    acknowledged.withLock { $0.append(id) }
                    id += 1
                    usleep(5_000)
                }
            }
        }

        func stop() -> [Int] {
            stopped.store(true, ordering: .relaxed)
            _ = done.wait(timeout: .now() + 10)
            return acknowledged.withLock { $0 }
        }
    }

    /// `pgquorum switchover` (clean: no acknowledged write lost) and `pgquorum failover`, both
    /// in the history with their reasons; a failover to a node that is down is refused.
    @Test func switchoverAndFailoverKeepEveryWriteAndAreRecorded() async throws {
        // Checkpoints spread over 27 minutes: a promoted node's pg_control keeps its old
        // timeline as it does under load in production, where the checkpoint after a promotion
        // takes minutes.
        let cluster = try LocalCluster(nodes: 3, postgres: true, postgresParameters: ["checkpoint_timeout": "30min", "max_wal_size": "1GB"])
        defer { cluster.tearDown() }
        let (first, replicas) = try await Self.settled(cluster)
        try PostgresConnection(cluster.conninfo(of: first)).query("CREATE TABLE writes (id bigint PRIMARY KEY, node text)")

        // Writes go on during the switchover; every acknowledged one must survive it.
        let target = replicas[0]
        let writer = Writer(conninfo: cluster.conninfo(of: first), firstID: 1)
        try await Task.sleep(for: .milliseconds(300))
        let switched = try cluster.run(["switchover", "--config", cluster.configPath, "--to", target, "--reason", "kernel upgrade"],
                                       includeErrors: true)
        let acknowledged = writer.stop()
        #expect(switched.status == 0, "\(switched.output)\n\(cluster.log(of: first))")
        #expect(switched.output.contains("primary moved from \(first) to \(target)"), "\(switched.output)")
        #expect(!acknowledged.isEmpty)
        #expect(await cluster.status(of: target, path: "/primary") == 200)
        let onTarget = try PostgresConnection(cluster.conninfo(of: target))
        let kept = try onTarget.value("SELECT count(*) FROM writes WHERE id <= \(acknowledged.max() ?? 0)")
        #expect(kept == "\(acknowledged.count)", "acknowledged \(acknowledged.count) writes, the new primary has \(kept ?? "?")")

        // Failover to the third node, with a reason. Thousands of pages dirty on it first (it
        // replays them), so its own checkpoint after the promotion runs slowly.
        try onTarget.query("INSERT INTO writes SELECT g, 'bulk' FROM generate_series(2000000, 2200000) g")
        let third = replicas[1]
        let caughtUp = await Self.nodes(answering: "/replica", in: cluster, among: [third], within: 30) { $0 == [third] }
        #expect(caughtUp == [third])
        // Writes go on until the failover fences the primary: its WAL then runs past the point
        // where the third node's timeline begins, so it must be rewound to follow.
        let busyWriter = Writer(conninfo: cluster.conninfo(of: target), firstID: 1_000_000)
        try await Task.sleep(for: .milliseconds(300))
        let failedOver = try cluster.run(["failover", third, "--reason", "drill 7", "--config", cluster.configPath], includeErrors: true)
        _ = busyWriter.stop()
        #expect(failedOver.status == 0, "\(failedOver.output)")
        #expect(await Self.nodes(answering: "/primary", in: cluster, among: [third], within: 10) { $0 == [third] } == [third])
        // The old primary, promoted by the switchover moments ago, rewinds and follows the new
        // one (pg_rewind reads a just-promoted source's timeline from pg_control, which only its
        // next checkpoint updates).
        let followed = await Self.nodes(answering: "/replica", in: cluster, among: [target], within: 30) { $0 == [target] }
        #expect(followed == [target], "\(cluster.log(of: target))")

        // A failover to a node whose agent is down is refused, with the reason.
        cluster.stop(first, signal: SIGKILL)
        try await Task.sleep(for: .seconds(2))
        let refused = try cluster.run(["failover", first, "--reason", "should not happen", "--config", cluster.configPath], includeErrors: true)
        #expect(refused.status != 0)
        #expect(refused.output.contains("no recent report from \(first)"), "\(refused.output)")

        let history = try cluster.run(["history", "--config", cluster.configPath])
        #expect(history.status == 0)
        #expect(history.output.contains("switchover by admin") && history.output.contains("kernel upgrade"), "\(history.output)")
        #expect(history.output.contains("failover by admin") && history.output.contains("drill 7"), "\(history.output)")
        let entries = await Self.history(of: third, in: cluster)
        #expect(entries.map(\.epoch) == [1, 2, 3] && entries.map(\.primary) == [first, target, third], "\(entries)")
    }

    /// A health query that never returns (its backend frozen, as on a stalled disk) must not
    /// leave the last "healthy primary" report standing (issue 16, race 4): the node answers
    /// /primary with 503 within seconds, and once restart_timeout_s passes its agent hands over.
    @Test func aStalledHealthQueryDoesNotHideADeadPrimary() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true, postgresSettings: "  restart_timeout_s: 3\n")
        defer { cluster.tearDown() }
        let (stalled, others) = try await Self.settled(cluster)
        // The thread that runs these queries carries its own name (`top -H`, `ps -L`).
        let agent = try #require(cluster.pid(of: stalled))
        let threads = try FileManager.default.contentsOfDirectory(atPath: "/proc/\(agent)/task").compactMap {
            try? String(contentsOfFile: "/proc/\(agent)/task/\($0)/comm", encoding: .utf8).trimmingCharacters(in: .newlines)
        }
        #expect(threads.contains("pgquorum-pg"), "\(threads)")
        // A stalled disk: every query of the agent hangs. The postmaster is frozen, so no new
        // connection gets through (a reconnect that won a race with the freezer once answered
        // a query and reset the agent's count of failed checks), and each backend the agent
        // has on the Unix socket is frozen as soon as it appears, the test's own probe excepted.
        let probe = try PostgresConnection(cluster.conninfo(of: stalled))
        let backend = try #require(try probe.value("SELECT pg_backend_pid()").flatMap { Int32($0) })
        let status = try String(contentsOfFile: "/proc/\(backend)/status", encoding: .utf8)
        let postmaster = try #require(status.split(separator: "\n").first { $0.hasPrefix("PPid:") }
            .flatMap { Int32($0.dropFirst(5).trimmingCharacters(in: .whitespaces)) })
        kill(postmaster, SIGSTOP)
        let frozen = Mutex<Set<Int32>>([postmaster])
        let freezer = Task {
            let until = ContinuousClock.now + .seconds(45)
            while ContinuousClock.now < until, !Task.isCancelled {
                let rows = (try? probe.query("""
                    SELECT pid FROM pg_stat_activity WHERE backend_type = 'client backend' AND client_addr IS NULL AND pid <> pg_backend_pid()
                    """)) ?? []
                for pid in rows.compactMap({ $0.first ?? nil }).compactMap({ Int32($0) }) where frozen.withLock({ $0.insert(pid).inserted }) {
                    kill(pid, SIGSTOP)
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
        }
        defer {
            freezer.cancel()
            for pid in frozen.withLock({ $0 }) { kill(pid, SIGCONT) }
        }

        let refused = await Self.nodes(answering: "/primary", in: cluster, among: [stalled], within: 10) { $0.isEmpty }
        #expect(refused.isEmpty, "\(stalled) still answered /primary with 200 while its health query hung")
        let successor = await Self.nodes(answering: "/primary", in: cluster, among: others, within: 30) { $0.count == 1 }
        #expect(successor.count == 1, "no replica took over\n\(cluster.log(of: stalled))")
        #expect(cluster.log(of: stalled).contains("PostgreSQL did not answer within"))
    }

    /// The seed's trigger: the primary's PostgreSQL fails its health check repeatedly and cannot
    /// be restarted within restart_timeout_s (here its postgresql.conf is gone), so its agent
    /// hands leadership to the best replica, which is promoted.
    @Test func aPrimaryThatCannotRestartHandsOver() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true, postgresSettings: "  health_check_failures: 3\n  restart_timeout_s: 2\n")
        defer { cluster.tearDown() }
        let (broken, others) = try await Self.settled(cluster)

        let data = cluster.directory + "/data/\(broken)/postgres"
        try FileManager.default.moveItem(atPath: data + "/postgresql.conf", toPath: data + "/postgresql.conf.hidden")
        let pidLine = try String(contentsOfFile: data + "/postmaster.pid", encoding: .utf8).split(separator: "\n").first
        let postmaster = try #require(pidLine.flatMap { Int32($0) })
        kill(postmaster, SIGQUIT)

        let successor = await Self.nodes(answering: "/primary", in: cluster, among: others, within: 30) { $0.count == 1 }
        #expect(successor.count == 1, "no replica took over\n\(cluster.log(of: broken))")
        #expect(await cluster.status(of: broken, path: "/health") == 503)
        let history = await Self.history(of: successor.first ?? others[0], in: cluster)
        #expect(history.count == 2 && history.last?.primary == successor.first, "\(history)")
        #expect(cluster.log(of: broken).contains("did not restart within"), "the hand-over reason is logged")
    }

    /// SIGTERM of the primary's agent (a rolling restart): the primary leaves like a switchover,
    /// so every acknowledged write is on the new primary.
    @Test func stoppingThePrimarysAgentHandsThePrimaryOverCleanly() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true)
        defer { cluster.tearDown() }
        let (old, others) = try await Self.settled(cluster)
        try PostgresConnection(cluster.conninfo(of: old)).query("CREATE TABLE writes (id bigint PRIMARY KEY, node text)")
        let writer = Writer(conninfo: cluster.conninfo(of: old), firstID: 1)
        try await Task.sleep(for: .milliseconds(300))
        let status = cluster.stop(old, signal: SIGTERM, within: 40)
        let acknowledged = writer.stop()
        #expect(status == 0, "\(cluster.log(of: old))")
        #expect(cluster.log(of: old).contains("primary handed over before exit"), "\(cluster.log(of: old))")
        let successor = await Self.nodes(answering: "/primary", in: cluster, among: others, within: 20) { $0.count == 1 }
        try #require(successor.count == 1)
        let connection = try PostgresConnection(cluster.conninfo(of: successor[0]))
        let kept = try connection.value("SELECT count(*) FROM writes WHERE id <= \(acknowledged.max() ?? 0)")
        #expect(!acknowledged.isEmpty && kept == "\(acknowledged.count)", "acknowledged \(acknowledged.count), kept \(kept ?? "?")")
    }

    /// With a passfile, replication and rewinds authenticate with scram-sha-256 and the
    /// passwords it holds; a client without the password is refused; no password appears in
    /// the agents' logs or API answers.
    @Test func passwordsFromAPassfileAreUsedAndNeverShown() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true, postgresSettings: "  passfile: pgpass\n")
        defer { cluster.tearDown() }
        let passfile = cluster.directory + "/pgpass"
        try "# host:port:database:user:password\n*:*:*:replicator:repl-s3cret\\:x\n*:*:*:postgres:su-s3cret\n"
            .write(toFile: passfile, atomically: true, encoding: .utf8)
        chmod(passfile, 0o600)
        if geteuid() == 0, let user = OSUser.named("postgres") { chown(passfile, user.uid, user.gid) }
        // Streaming replicas: they authenticated with the passfile's password.
        let (primary, others) = try await Self.settled(cluster)

        #expect(throws: PostgresError.self) { try PostgresConnection(cluster.conninfo(of: primary)) }
        let withPassword = try PostgresConnection(cluster.conninfo(of: primary) + " password=su-s3cret")
        #expect(try withPassword.value("SELECT 1") == "1")
        for name in cluster.names {
            let log = cluster.log(of: name)
            #expect(!log.contains("s3cret"), "a password in \(name)'s log")
            let view = await cluster.view(of: name)
            let encoded = String(decoding: try JSONEncoder().encode(view), as: UTF8.self)
            #expect(!encoded.contains("s3cret"))
        }
        let conf = try String(contentsOfFile: cluster.directory + "/data/\(others[0])/postgres/pgquorum.conf", encoding: .utf8)
        #expect(conf.contains("passfile=") && !conf.contains("s3cret"), "primary_conninfo names the passfile, never the password")
    }

    /// A node's `pgquorum_raft_snapshot_index` from its /metrics (nil when it does not answer).
    static func snapshotIndex(of name: String, in cluster: LocalCluster) async -> UInt64? {
        guard let metrics = await cluster.get(name, path: "/metrics"), metrics.status == 200,
              let line = metrics.body.split(separator: "\n").first(where: { $0.hasPrefix("pgquorum_raft_snapshot_index{") }),
              let value = line.split(separator: " ").last else { return nil }
        return UInt64(value)
    }

    /// Log compaction (issue 19): with a snapshot every 10 applied entries, the agents compact
    /// their logs under write load; a replica that was down while the primary moved catches up
    /// from the leader's snapshot, which carries the cluster state (the history it missed); and a
    /// restarted agent restores that state from its own snapshot.
    @Test func aLaggingNodeCatchesUpFromTheLeadersSnapshot() async throws {
        let cluster = try LocalCluster(nodes: 3, postgres: true, extraConfig: "raft:\n  snapshot_entries: 10\n  keep_entries: 2\n")
        defer { cluster.tearDown() }
        let (first, replicas) = try await Self.settled(cluster)
        let (target, lagging) = (replicas[0], replicas[1])
        try PostgresConnection(cluster.conninfo(of: first)).query("CREATE TABLE writes (id bigint PRIMARY KEY, node text)")
        cluster.stop(lagging, signal: SIGKILL)

        // While it is down the primary moves, and writes make the new primary record its WAL
        // position about twice a second: entries enough for several compactions.
        let switched = try cluster.run(["switchover", "--config", cluster.configPath, "--to", target, "--reason", "compaction drill"],
                                       includeErrors: true)
        try #require(switched.status == 0, "\(switched.output)")
        let writer = Writer(conninfo: cluster.conninfo(of: target), firstID: 1)
        var indexes: [UInt64] = []
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            indexes = []
            for name in [first, target] { if let index = await Self.snapshotIndex(of: name, in: cluster) { indexes.append(index) } }
            if indexes.count == 2, indexes.allSatisfy({ $0 >= 30 }) { break }
            try await Task.sleep(for: .milliseconds(200))
        }
        let acknowledged = writer.stop()
        #expect(!acknowledged.isEmpty)
        try #require(indexes.count == 2 && indexes.allSatisfy { $0 >= 30 }, "the running agents did not compact: \(indexes)\n\(cluster.log(of: target))")
        #expect(cluster.log(of: target).contains("compacted the Raft log"))

        // The lagging node's log ends before the leader's snapshot: it receives the snapshot,
        // learns the switchover it missed from it, and its PostgreSQL follows the new primary.
        try cluster.start(lagging)
        var learned: [HistoryView] = []
        let learnDeadline = ContinuousClock.now + .seconds(60)
        while learned.count < 2, ContinuousClock.now < learnDeadline {
            learned = await Self.history(of: lagging, in: cluster)
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(learned.map(\.epoch) == [1, 2] && learned.last?.primary == target && learned.last?.reason.contains("compaction drill") == true,
                "\(learned)\n\(cluster.log(of: lagging))")
        #expect(cluster.log(of: lagging).contains("restored the cluster state from the leader's snapshot"), "\(cluster.log(of: lagging))")
        let following = await Self.eventually(within: 60) { () -> Bool? in
            let connection = try PostgresConnection(cluster.conninfo(of: lagging))
            return try connection.value("SELECT count(*) FROM writes") == "\(acknowledged.count)" ? true : nil
        }
        #expect(following == true, "\(lagging) did not catch up\n\(cluster.log(of: lagging))")
        #expect(await Self.nodes(answering: "/replica", in: cluster, among: [lagging], within: 30) { $0 == [lagging] } == [lagging])

        // A restart restores the state from the node's own snapshot, then replays what follows it.
        cluster.stop(first, signal: SIGTERM)
        try cluster.start(first)
        let back = await Self.nodes(answering: "/replica", in: cluster, among: [first], within: 60) { $0 == [first] }
        #expect(back == [first], "\(cluster.log(of: first))")
        let restarted = await Self.history(of: first, in: cluster)
        #expect(restarted == learned, "\(restarted)")
        #expect((await Self.snapshotIndex(of: first, in: cluster) ?? 0) >= 30)
    }
}
