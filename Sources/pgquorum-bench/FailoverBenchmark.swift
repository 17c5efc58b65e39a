import Agent
import ArgumentParser
import ClusterConfig
import Foundation
import Lab
import LocalCluster
import PostgresControl
import WorkloadCheck
#if canImport(Glibc)
import Glibc
#endif

/// Unplanned failover and planned switchover of the PostgreSQL primary on a three-node lab (real
/// agents and PostgreSQL servers in network namespaces, default timing), with a client writing
/// every 20 ms the way an application would: libpq's multi-host connection string with
/// `target_session_attrs=read-write`. Needs root (the lab does).
struct FailoverBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Kill → first acknowledged write on the new primary (SIGKILL of the primary node), and the write gap of a switchover (3-node lab, needs root)."
    )

    @Option(help: "Primary kills.")
    var trials = 10

    @Option(help: "Planned switchovers.")
    var switchovers = 5

    @Option(help: "Milliseconds between the client's writes.")
    var intervalMs = 20

    @Option(help: "The pgquorum binary (default: next to this one).")
    var binary: String?

    @Option(help: "Lab directory (removed at the end, unless --keep).")
    var dir = "/tmp/pgquorum-bench-failover"

    @Flag(help: "Leave the lab running afterwards (logs in DIR/logs; remove it with pgquorum lab down --dir DIR).")
    var keep = false

    func run() async throws {
        let agents = binary ?? LocalCluster.defaultBinary()
        let state: LabState
        do {
            state = try await Lab.up(Lab.Options(directory: dir, nodes: Lab.seedNodes, cluster: "bench", binary: agents, postgres: true))
        } catch {
            throw CommandFailure("cannot start the lab: \(error)")
        }
        defer { if !keep { _ = try? Lab.down(directory: dir) } }
        let probe = try LabProbe(state)
        let names = state.nodes.map(\.name)
        let hosts = state.nodes.map(\.address)
        print("pgquorum-bench failover: 3 lab nodes (\(hosts.joined(separator: ", "))), heartbeat 100 ms, election timeout 1000 ms, a write every \(intervalMs) ms")
        print("client: host=\(hosts.joined(separator: ",")) target_session_attrs=read-write")

        func waitFor(_ what: String, seconds: Double, _ condition: () async -> Bool) async throws {
            do { try await probe.wait(within: .milliseconds(Int64(seconds * 1_000)), what: what, condition) } catch {
                throw CommandFailure(error.description)
            }
        }
        func whole(_ what: String) async throws -> String {
            do { return try await probe.waitUntilWhole(within: .seconds(120), what: what) } catch { throw CommandFailure(error.description) }
        }

        _ = try await whole("the bootstrap (a primary and two streaming replicas)")
        let conninfo = WorkloadClient.conninfo(addresses: hosts)
        try PostgresConnection(conninfo).query(WorkloadClient.createTable)
        let writer = WorkloadClient(conninfo: conninfo, nodes: Dictionary(uniqueKeysWithValues: state.nodes.map { ($0.address, $0.name) }),
                                    interval: .milliseconds(Int64(intervalMs)))
        defer { writer.stop() }

        // Unplanned: SIGKILL of the primary node (its agent; PostgreSQL dies with it).
        var failovers: [Double] = []
        for trial in 1...max(1, trials) {
            let victim = try await whole("replication before trial \(trial)")
            try await Task.sleep(for: .seconds(1))
            let killed = WorkloadClient.wallClock()
            do { try Lab.kill(directory: dir, node: victim) } catch { throw CommandFailure("\(error)") }
            try await waitFor("a write on a new primary (trial \(trial))", seconds: 30) { writer.firstAck(after: killed, notBy: victim) != nil }
            guard let acked = writer.firstAck(after: killed, notBy: victim) else { return }
            let seconds = (acked.ackedAt - killed) / 1_000
            failovers.append(seconds)
            print(String(format: "  failover %2d: killed %@ → first acknowledged write %5.0f ms later", trial, victim, seconds * 1_000))
            do { try Lab.restart(directory: dir, node: victim) } catch { throw CommandFailure("\(error)") }
            try await waitFor("\(victim) rejoining", seconds: 90) { await probe.isReplica(victim) }
        }

        // Planned: pgquorum switchover to the best replica; the longest gap between acknowledged writes.
        var gaps: [Double] = []
        for trial in 1...max(1, switchovers) {
            _ = try await whole("replication before switchover \(trial)")
            try await Task.sleep(for: .seconds(1))
            let started = WorkloadClient.wallClock()
            let result = try runCommand(agents, ["switchover", "--config", state.configPath, "--reason", "benchmark"])
            guard result.status == 0 else { throw CommandFailure("switchover \(trial) failed: \(result.output)") }
            try await Task.sleep(for: .seconds(1))
            let gap = writer.longestGap(from: started, to: WorkloadClient.wallClock()) / 1_000
            gaps.append(gap)
            print(String(format: "  switchover %d: %@ — longest write gap %4.0f ms", trial, result.output.trimmingCharacters(in: .whitespacesAndNewlines), gap * 1_000))
        }
        print(summary("failover (kill → first acknowledged write on the new primary)", failovers))
        print(summary("switchover write gap", gaps))
        print("writes acknowledged: \(writer.writes.count), node names: \(names.joined(separator: ", "))")
    }

    private func summary(_ what: String, _ values: [Double]) -> String {
        guard let figures = Percentiles(values.map { $0 * 1_000 }) else { return "\(what): no measurements" }
        return String(format: "%@: median %.0f ms, p99 %.0f ms, min %.0f ms, max %.0f ms (n=%d)", what,
                      figures.median, figures.p99, figures.min, figures.max, figures.count)
    }

    private func runCommand(_ binary: String, _ arguments: [String]) throws -> (status: Int32, output: String) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        let pipe = Pipe()
        process.standardOutput = pipe
        process.standardError = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }
}
