import ArgumentParser
import Foundation
import LocalCluster
#if canImport(Glibc)
import Glibc
#endif

/// Failover of the Raft leadership between real agent processes: SIGKILL of the leader, time
/// until both survivors name the same new leader. Then the idle footprint of each agent.
struct ElectionBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "election",
        abstract: "Time to a new leader after SIGKILL of the leader (3 agents on loopback), and idle RSS/CPU per agent."
    )

    @Option(help: "Leader kills.")
    var trials = 20

    @Option(help: "Heartbeat interval in milliseconds (the config default is 100).")
    var heartbeatMs = 100

    @Option(help: "Election timeout in milliseconds (the config default is 1000).")
    var electionTimeoutMs = 1_000

    @Option(help: "Seconds of idle measurement for RSS and CPU.")
    var idleSeconds = 60

    @Option(help: "The pgquorum binary (default: next to this one).")
    var binary: String?

    func run() async throws {
        let agentBinary = binary ?? LocalCluster.defaultBinary()
        let cluster = try LocalCluster(nodes: 3, heartbeatMilliseconds: heartbeatMs,
                                       electionTimeoutMilliseconds: electionTimeoutMs, binary: agentBinary)
        defer { cluster.tearDown() }
        print("pgquorum-bench election: 3 agents on loopback, heartbeat \(heartbeatMs) ms, election timeout \(electionTimeoutMs) ms (randomised to [1×, 2×)), \(trials) leader kills")
        print("agents: \(agentBinary)")
        try cluster.startAll()
        guard var current = await cluster.agreedLeader(poll: .milliseconds(20)) else {
            throw CommandFailure("no leader elected within 20 s; see the logs in \(cluster.directory)")
        }

        var durations: [Double] = []
        for trial in 1...trials {
            let victim = current.name
            let survivors = cluster.names.filter { $0 != victim }
            let killed = ContinuousClock.now
            cluster.stop(victim, signal: SIGKILL)
            guard let next = await cluster.agreedLeader(among: survivors, within: 30, poll: .milliseconds(10)),
                  next.term > current.term else {
                throw CommandFailure("trial \(trial): no new leader within 30 s; logs in \(cluster.directory)")
            }
            let elapsed = (ContinuousClock.now - killed).seconds
            durations.append(elapsed)
            print(String(format: "  trial %2d: killed %@ (term %llu) → %@ leads (term %llu) after %4.0f ms",
                         trial, victim, current.term, next.name, next.term, elapsed * 1_000))
            try cluster.start(victim)
            guard let settled = await cluster.agreedLeader(among: cluster.names, within: 30, poll: .milliseconds(50)) else {
                throw CommandFailure("trial \(trial): \(victim) did not rejoin; logs in \(cluster.directory)")
            }
            current = settled
            // Let the restarted agent settle (its own election timer must not be mid-flight).
            try await Task.sleep(for: .milliseconds(Int64(2 * electionTimeoutMs)))
        }
        let sorted = durations.sorted()
        func percentile(_ p: Double) -> Double { sorted[min(sorted.count - 1, Int((p * Double(sorted.count)).rounded(.up)) - 1)] }
        print(String(format: "time to new leader: median %.0f ms, p99 %.0f ms, min %.0f ms, max %.0f ms (n=%d)",
                     percentile(0.5) * 1_000, percentile(0.99) * 1_000, sorted[0] * 1_000, sorted[sorted.count - 1] * 1_000, sorted.count))

        // Idle footprint: no requests, only Raft heartbeats and RTT pings.
        let pids = cluster.names.compactMap { name in cluster.pid(of: name).map { (name, $0) } }
        let before = pids.map { ProcessSample.cpuSeconds(pid: $0.1) }
        try await Task.sleep(for: .seconds(idleSeconds))
        for ((name, pid), start) in zip(pids, before) {
            let cpu = (ProcessSample.cpuSeconds(pid: pid) - start) / Double(idleSeconds) * 60
            let memory = ProcessSample.memory(pid: pid)
            print(String(format: "idle %@ (%@): RSS %.1f MB (anonymous %.1f MB, PSS %.1f MB), CPU %.2f s per minute (%.2f %% of a core)",
                         name, name == current.name ? "leader" : "follower", memory.rss, memory.anonymous, memory.proportional,
                         cpu, cpu / 60 * 100))
        }
    }
}

struct CommandFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
