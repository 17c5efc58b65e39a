import ArgumentParser
import Foundation
import Lab
import LocalCluster
import PostgresControl
#if canImport(Glibc)
import Glibc
#endif

/// The agent's API under a flood: three agents with PostgreSQL on loopback; `wrk` (a thousand
/// connections) and silent clients at one replica's API while the primary's agent is killed.
/// Prints the failover time idle and under the flood, the elections it took, whether an agent
/// exited, and the API's `/primary` throughput.
struct OverloadBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "overload",
        abstract: "Failover time while one agent's API is flooded (wrk, 1000 connections, slow clients), and /primary throughput."
    )

    @Option(help: "wrk connections during the failover.")
    var connections = 1_000

    @Option(help: "Silent connections (open, never a byte) during the failover.")
    var slowClients = 200

    @Option(help: "Failovers measured idle and again under the flood.")
    var trials = 3

    @Option(help: "The pgquorum binary (default: next to this one).")
    var binary: String?

    func run() async throws {
        guard access("/usr/bin/wrk", X_OK) == 0 else { throw CommandFailure("wrk is not installed (scripts/install-deps.sh installs it)") }
        let agentBinary = binary ?? LocalCluster.defaultBinary()
        let cluster = try LocalCluster(nodes: 3, heartbeatMilliseconds: 100, electionTimeoutMilliseconds: 1_000, postgres: true,
                                       binary: agentBinary)
        defer { cluster.tearDown() }
        print("pgquorum-bench overload: 3 agents with PostgreSQL on loopback, heartbeat 100 ms; wrk with \(connections) connections "
              + "and \(slowClients) silent clients at a replica's API during each failover")
        print("agents: \(agentBinary)")
        try cluster.startAll()
        guard try await cluster.settled(within: 90) != nil else { throw CommandFailure("the cluster did not settle; logs in \(cluster.directory)") }
        let conninfo = cluster.writerConninfo
        try PostgresConnection(conninfo).query(WorkloadClient.createTable)
        let writer = WorkloadClient(conninfo: conninfo, nodes: [:], interval: .milliseconds(10))
        defer { writer.stop() }

        // /primary throughput of one agent, no failover: 100 keep-alive connections for 10 s.
        guard let (primary, _) = try await cluster.settled(within: 90), let apiPort = cluster.apiPorts[primary] else { return }
        let throughput = try wrk(port: apiPort, connections: 100, seconds: 10)
        print("GET /primary on \(primary)'s API (TLS), 100 connections, 10 s: \(throughput)")

        var idle: [Double] = [], flooded: [Double] = []
        for trial in 1...trials {
            idle.append(try await failover(cluster, writer: writer, flood: false, trial: trial))
            flooded.append(try await failover(cluster, writer: writer, flood: true, trial: trial))
        }
        func median(_ values: [Double]) -> Double { values.sorted()[values.count / 2] }
        print(String(format: "failover (kill → first write acknowledged after it): idle median %.0f ms, flooded median %.0f ms (%+.0f %%)",
                     median(idle) * 1_000, median(flooded) * 1_000, (median(flooded) / median(idle) - 1) * 100))
        print("agents running at the end: \(cluster.running.count) of 3")
    }

    /// Kills the primary's agent (its PostgreSQL dies with it) and returns the seconds until a
    /// write sent after the kill is acknowledged; with `flood`, wrk and silent clients hammer a
    /// replica's API meanwhile. The killed agent is started again before returning.
    private func failover(_ cluster: LocalCluster, writer: WorkloadClient, flood: Bool, trial: Int) async throws -> Double {
        guard let (primary, replicas) = try await cluster.settled(within: 90), let target = replicas.first,
              let targetPort = cluster.apiPorts[target] else {
            throw CommandFailure("the cluster did not settle before trial \(trial); logs in \(cluster.directory)")
        }
        let electionsBefore = await elections(cluster, among: replicas)
        var flooding: Process?
        var silent: [Int32] = []
        if flood {
            flooding = try startWrk(port: targetPort, connections: connections, seconds: 12)
            silent = (0..<slowClients).compactMap { _ in LocalCluster.connectLoopback(port: targetPort) }
            try await Task.sleep(for: .seconds(3))
        }
        let killed = WorkloadClient.wallClock()
        _ = cluster.stop(primary, signal: SIGKILL)
        var seconds: Double?
        let deadline = ContinuousClock.now + .seconds(30)
        while seconds == nil, ContinuousClock.now < deadline {
            if let write = writer.writes.last(where: { $0.sentAt > killed + 20 }) {
                let first = writer.writes.first { $0.sentAt > killed + 20 } ?? write
                seconds = (first.ackedAt - killed) / 1_000
            }
            try await Task.sleep(for: .milliseconds(20))
        }
        var wrkSummary = ""
        if let flooding {
            flooding.waitUntilExit()
            wrkSummary = Self.summary(of: flooding)
        }
        for descriptor in silent { close(descriptor) }
        let electionsAfter = await elections(cluster, among: replicas)
        guard let seconds else { throw CommandFailure("trial \(trial): no write acknowledged within 30 s of the kill; logs in \(cluster.directory)") }
        print(String(format: "  trial %d %@: killed %@ → first write after %4.0f ms; elections started by the survivors: %d%@",
                     trial, flood ? "flooded" : "idle   ", primary, seconds * 1_000, electionsAfter - electionsBefore,
                     flood ? "; wrk at \(target): \(wrkSummary)" : ""))
        try cluster.start(primary)
        return seconds
    }

    private func elections(_ cluster: LocalCluster, among names: [String]) async -> Int {
        var total = 0
        for name in names {
            guard let body = await cluster.get(name, path: "/metrics")?.body,
                  let line = body.split(separator: "\n").first(where: { $0.hasPrefix("pgquorum_raft_elections_started_total{") }),
                  let value = Int(line.split(separator: " ").last ?? "") else { continue }
            total += value
        }
        return total
    }

    private func startWrk(port: Int, connections: Int, seconds: Int) throws -> Process {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/wrk")
        process.arguments = ["-t2", "-c\(connections)", "-d\(seconds)s", "--timeout", "2s", "https://127.0.0.1:\(port)/primary"]
        process.standardOutput = Pipe()
        process.standardError = Pipe()
        try process.run()
        return process
    }

    private func wrk(port: Int, connections: Int, seconds: Int) throws -> String {
        let process = try startWrk(port: port, connections: connections, seconds: seconds)
        process.waitUntilExit()
        return Self.summary(of: process)
    }

    /// "N requests/s, errors: …" from wrk's output.
    private static func summary(of process: Process) -> String {
        guard let pipe = process.standardOutput as? Pipe,
              let output = String(data: pipe.fileHandleForReading.readDataToEndOfFile(), encoding: .utf8) else { return "no output" }
        let lines = output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        let rate = lines.first { $0.hasPrefix("Requests/sec:") }.map { $0.replacingOccurrences(of: "Requests/sec:", with: "").trimmingCharacters(in: .whitespaces) } ?? "?"
        let errors = lines.first { $0.hasPrefix("Socket errors:") } ?? "no socket errors"
        let non2xx = lines.first { $0.hasPrefix("Non-2xx") } ?? ""
        return "\(rate) requests/s; \(errors)\(non2xx.isEmpty ? "" : "; " + non2xx)"
    }
}
