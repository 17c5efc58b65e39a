import ArgumentParser
import Foundation
import Lab
import LocalCluster
import PostgresControl
#if canImport(Glibc)
import Glibc
#endif

/// Months of operation, compressed: three agents with PostgreSQL on loopback under a steady
/// write load, the primary moved every few minutes (switchover and failover in turn), each
/// agent's resources sampled throughout. Prints the growth per hour of each resource, then
/// the time a restarted agent takes to rejoin.
struct SoakBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Resource growth per hour of three agents with PostgreSQL under writes and repeated primary moves."
    )

    @Option(help: "Minutes of load.")
    var minutes = 60

    @Option(help: "Seconds between primary moves (switchover and failover in turn).")
    var moveEvery = 180

    @Option(help: "Seconds between samples.")
    var sampleEvery = 30

    @Option(help: "Milliseconds between writes of the client.")
    var writeIntervalMs = 20

    @Option(help: "raft.snapshot_entries for the agents (the default, 10000, takes hours to reach at about one entry a second).")
    var snapshotEntries = 1_000

    @Option(help: "raft.keep_entries for the agents.")
    var keepEntries = 500

    @Option(help: "The pgquorum binary (default: next to this one).")
    var binary: String?

    struct Sample {
        var at: Double        // seconds since the start of the load
        var cpu: Double       // seconds, cumulative
        var rss: Double       // MB
        var descriptors: Double
        var logBytes: Double  // the node's raft directory on disk
        var logEntries: Double  // entries held after the snapshot (last index − snapshot index)
    }

    func run() async throws {
        let agentBinary = binary ?? LocalCluster.defaultBinary()
        let raft = "raft:\n  snapshot_entries: \(snapshotEntries)\n  keep_entries: \(keepEntries)\n"
        let cluster = try LocalCluster(nodes: 3, heartbeatMilliseconds: 100, electionTimeoutMilliseconds: 1_000, postgres: true,
                                       extraConfig: raft, binary: agentBinary)
        defer { cluster.tearDown() }
        print("pgquorum-bench soak: 3 agents with PostgreSQL on loopback, heartbeat 100 ms, \(minutes) min, a write every \(writeIntervalMs) ms, "
              + "the primary moved every \(moveEvery) s, raft.snapshot_entries \(snapshotEntries), keep_entries \(keepEntries)")
        print("agents: \(agentBinary)")
        try cluster.startAll()
        guard try await cluster.settled(within: 120) != nil else { throw CommandFailure("the cluster did not settle; logs in \(cluster.directory)") }

        let conninfo = cluster.writerConninfo
        try PostgresConnection(conninfo).query(WorkloadClient.createTable)
        let writer = WorkloadClient(conninfo: conninfo, nodes: [:], interval: .milliseconds(Int64(writeIntervalMs)))
        defer { writer.stop() }

        let start = ContinuousClock.now
        let end = start + .seconds(minutes * 60)
        var samples: [String: [Sample]] = [:]
        var nextSample = start, nextMove = start + .seconds(moveEvery)
        var moves = 0, failedMoves: [String] = []
        print("      t  node   CPU s   RSS MB  fds  log KB on disk  log entries in memory")
        while ContinuousClock.now < end {
            if ContinuousClock.now >= nextSample {
                nextSample += .seconds(sampleEvery)
                let at = (ContinuousClock.now - start).seconds
                for name in cluster.names {
                    guard let sample = await sample(name, in: cluster, at: at) else { continue }
                    samples[name, default: []].append(sample)
                    print(String(format: "%6.0fs  %@  %6.2f  %7.1f  %3.0f  %14.0f  %21.0f", at, name, sample.cpu, sample.rss, sample.descriptors,
                                 sample.logBytes / 1_024, sample.logEntries))
                }
            }
            if ContinuousClock.now >= nextMove {
                nextMove += .seconds(moveEvery)
                moves += 1
                if let problem = try await movePrimary(cluster, planned: moves % 2 == 1) { failedMoves.append("move \(moves): \(problem)") }
            }
            try await Task.sleep(for: .milliseconds(250))
        }
        let loadEnd = WorkloadClient.wallClock()
        let writes = writer.writes
        writer.stop()

        print("growth per hour (least squares over the samples after the first tenth of the run):")
        for name in cluster.names {
            let all = samples[name] ?? []
            let kept = Array(all.dropFirst(all.count / 10))
            guard kept.count >= 3 else { continue }
            func slope(_ value: (Sample) -> Double) -> Double { leastSquaresSlope(kept.map { ($0.at, value($0)) }) * 3_600 }
            let last = kept[kept.count - 1]
            print(String(format: "  %@: CPU %.1f s/h (%.2f s per minute), RSS %+.2f MB/h (now %.1f MB), descriptors %+.1f/h (now %.0f), "
                         + "log on disk %+.0f KB/h (now %.0f KB), log in memory %+.0f entries/h (now %.0f)",
                         name, slope(\.cpu), slope(\.cpu) / 60, slope(\.rss), last.rss, slope(\.descriptors), last.descriptors,
                         slope(\.logBytes) / 1_024, last.logBytes / 1_024, slope(\.logEntries), last.logEntries))
        }
        let startWall = loadEnd - Double(minutes * 60) * 1_000
        print(String(format: "writes acknowledged: %d, failed attempts: %d, longest write gap %.0f ms; primary moves: %d, failed: %d",
                     writes.count, writer.failedAttempts, writer.longestGap(from: startWall, to: loadEnd), moves, failedMoves.count))
        for problem in failedMoves { print("  \(problem)") }

        // Start-up after a restart: a replica's agent stopped and started again.
        guard let (_, replicas) = try await cluster.settled(within: 90), let replica = replicas.first else {
            for name in cluster.names {
                let copy = FileManager.default.temporaryDirectory.path + "/pgquorum-soak-\(name).log"
                try? cluster.log(of: name).write(toFile: copy, atomically: true, encoding: .utf8)
                print("\(name)'s log (copied to \(copy)) ends:\n" + cluster.log(of: name).split(separator: "\n").suffix(8).joined(separator: "\n"))
            }
            throw CommandFailure("the cluster did not settle after the load (one primary, two streaming replicas within 90 s)")
        }
        _ = cluster.stop(replica, signal: SIGTERM)
        let restarted = ContinuousClock.now
        try cluster.start(replica)
        var joined: Double?, streaming: Double?
        while (ContinuousClock.now - restarted) < .seconds(60), streaming == nil {
            if joined == nil, let view = await cluster.view(of: replica), view.leader != nil { joined = (ContinuousClock.now - restarted).seconds }
            if await cluster.status(of: replica, path: "/replica") == 200 { streaming = (ContinuousClock.now - restarted).seconds }
            try await Task.sleep(for: .milliseconds(20))
        }
        print(String(format: "restart of %@'s agent: knows the leader after %.0f ms, its PostgreSQL streams again after %.0f ms",
                     replica, (joined ?? .nan) * 1_000, (streaming ?? .nan) * 1_000))
    }

    /// One primary and two streaming replicas, within `seconds`; nil when that does not happen.
    /// A switchover (planned) or a failover to a replica; nil when it worked, else why not.
    private func movePrimary(_ cluster: LocalCluster, planned: Bool) async throws -> String? {
        guard let (primary, replicas) = try await cluster.settled(within: 60), let target = replicas.randomElement() else {
            return "the cluster was not settled (one primary, two streaming replicas) within 60 s"
        }
        let arguments = planned
            ? ["switchover", "--config", cluster.configPath, "--to", target, "--reason", "soak"]
            : ["failover", target, "--config", cluster.configPath, "--reason", "soak"]
        let result = try cluster.run(arguments, includeErrors: true)
        let what = planned ? "switchover" : "failover"
        guard result.status == 0 else { return "\(what) \(primary) → \(target) failed: \(result.output)" }
        print("        \(what) \(primary) → \(target)")
        return nil
    }

    private func sample(_ name: String, in cluster: LocalCluster, at: Double) async -> Sample? {
        guard let pid = cluster.pid(of: name) else { return nil }
        let descriptors = (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd").count) ?? 0
        var entries = 0.0
        if let metrics = await cluster.get(name, path: "/metrics")?.body {
            func value(_ metric: String) -> Double {
                metrics.split(separator: "\n").first { $0.hasPrefix("pgquorum_\(metric){") }.flatMap { Double($0.split(separator: " ").last ?? "") } ?? 0
            }
            entries = value("raft_last_index") - value("raft_snapshot_index")
        }
        return Sample(at: at, cpu: ProcessSample.cpuSeconds(pid: pid), rss: ProcessSample.memory(pid: pid).rss,
                      descriptors: Double(descriptors), logBytes: Double(directoryBytes(cluster.directory + "/data/\(name)/raft")),
                      logEntries: entries)
    }

    private func directoryBytes(_ path: String) -> Int {
        guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        while let file = enumerator.nextObject() as? String {
            var info = stat()
            if stat(path + "/" + file, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG { total += Int(info.st_size) }
        }
        return total
    }
}

/// The slope of the least-squares line through `points` (0 for fewer than two distinct x).
func leastSquaresSlope(_ points: [(x: Double, y: Double)]) -> Double {
    let count = Double(points.count)
    guard count >= 2 else { return 0 }
    let meanX = points.map(\.x).reduce(0, +) / count, meanY = points.map(\.y).reduce(0, +) / count
    let covariance = points.map { ($0.x - meanX) * ($0.y - meanY) }.reduce(0, +)
    let variance = points.map { ($0.x - meanX) * ($0.x - meanX) }.reduce(0, +)
    return variance > 0 ? covariance / variance : 0
}
