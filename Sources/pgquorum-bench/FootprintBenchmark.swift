import ArgumentParser
import Foundation
import LocalCluster
#if canImport(Glibc)
import Glibc
#endif

/// What each agent costs at rest beside a running PostgreSQL: three agents with PostgreSQL on
/// loopback, production timing (heartbeat 100 ms), settled (one primary, two streaming
/// replicas), then left alone while their CPU time and memory are sampled.
struct FootprintBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "footprint",
        abstract: "Idle CPU and RSS of each agent in a three-node cluster with PostgreSQL on loopback."
    )

    @Option(help: "Seconds of idle measurement.")
    var seconds = 60

    @Option(help: "Seconds to wait after the cluster settled, before measuring.")
    var settle = 10

    @Option(help: "The pgquorum binary (default: next to this one).")
    var binary: String?

    func run() async throws {
        let agentBinary = binary ?? LocalCluster.defaultBinary()
        let cluster = try LocalCluster(nodes: 3, heartbeatMilliseconds: 100, electionTimeoutMilliseconds: 1_000, postgres: true,
                                       binary: agentBinary)
        defer { cluster.tearDown() }
        print("pgquorum-bench footprint: 3 agents with PostgreSQL on loopback, heartbeat 100 ms, \(seconds) s idle")
        print("agents: \(agentBinary)")
        try cluster.startAll()
        let primary = try await cluster.settled(within: 120)?.primary
        guard let primary else { throw CommandFailure("the cluster did not settle within 120 s; logs in \(cluster.directory)") }
        let leader = await cluster.view(of: primary)?.leader ?? "?"
        try await Task.sleep(for: .seconds(settle))
        let pids = cluster.names.compactMap { name in cluster.pid(of: name).map { (name, $0) } }
        let before = pids.map { ProcessSample.cpuSeconds(pid: $0.1) }
        try await Task.sleep(for: .seconds(seconds))
        for ((name, pid), start) in zip(pids, before) {
            let cpu = (ProcessSample.cpuSeconds(pid: pid) - start) / Double(seconds) * 60
            let memory = ProcessSample.memory(pid: pid)
            let roles = [name == leader ? "leader" : "follower", name == primary ? "primary" : "replica"].joined(separator: ", ")
            print(String(format: "idle %@ (%@): CPU %.2f s per minute (%.2f %% of a core), RSS %.1f MB (anonymous %.1f MB, PSS %.1f MB)",
                         name, roles, cpu, cpu / 60 * 100, memory.rss, memory.anonymous, memory.proportional))
        }
    }
}
