import ArgumentParser
import Foundation
import LocalCluster

/// Does the leader keep its lease while its agent is busy? Clients hammer the leader's
/// linearizable `/cluster` (each request a TLS handshake, a ReadIndex round through the Raft
/// task and a JSON view) while the leader's metrics are read once a second: the worst tick
/// lateness, the ticks processed late, leader changes, and any moment without the lease
/// (issue 17: a leader once lost its lease over and over while its agent was busy).
struct LeaseLoadBenchmark: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lease-load",
        abstract: "Tick lateness and lease of a busy leader: concurrent linearizable /cluster requests against 3 agents on loopback."
    )

    @Option(help: "Concurrent clients, each sending one request after another.")
    var clients = 32

    @Option(help: "Seconds of load.")
    var seconds = 30

    @Option(help: "The pgquorum binary (default: next to this one).")
    var binary: String?

    func run() async throws {
        let agentBinary = binary ?? LocalCluster.defaultBinary()
        let cluster = try LocalCluster(nodes: 3, binary: agentBinary)
        defer { cluster.tearDown() }
        print("pgquorum-bench lease-load: 3 agents on loopback (heartbeat 100 ms, election timeout 1000 ms, lease 700 ms), \(clients) clients, \(seconds) s")
        print("agents: \(agentBinary)")
        try cluster.startAll()
        guard let leader = await cluster.agreedLeader(poll: .milliseconds(20)) else {
            throw CommandFailure("no leader elected within 20 s; see the logs in \(cluster.directory)")
        }
        try await Task.sleep(for: .seconds(2))
        guard let before = await metrics(cluster, leader.name) else { throw CommandFailure("the leader's /metrics did not answer") }
        let idle = before["pgquorum_raft_tick_lateness_seconds"] ?? 0
        let started = ContinuousClock.now
        let deadline = started + .seconds(seconds)

        enum Finding: Sendable {
            case requests(ok: Int, failed: Int)
            case observed(worstLateness: Double, withoutLease: Int, samples: Int)
        }
        var ok = 0, failed = 0
        var worst = 0.0, withoutLease = 0, samples = 0
        await withTaskGroup(of: Finding.self) { group in
            for _ in 0..<clients {
                group.addTask {
                    var ok = 0, failed = 0
                    while ContinuousClock.now < deadline {
                        if await cluster.view(of: leader.name, stale: false) != nil { ok += 1 } else { failed += 1 }
                    }
                    return .requests(ok: ok, failed: failed)
                }
            }
            group.addTask {
                // The observer: one scrape a second.
                var worst = 0.0, withoutLease = 0, samples = 0
                while ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .seconds(1))
                    guard let now = await metrics(cluster, leader.name) else { continue }
                    samples += 1
                    worst = max(worst, now["pgquorum_raft_tick_lateness_seconds"] ?? 0)
                    if now["pgquorum_raft_leader_lease"] != 1 { withoutLease += 1 }
                }
                return .observed(worstLateness: worst, withoutLease: withoutLease, samples: samples)
            }
            for await finding in group {
                switch finding {
                case .requests(let done, let refused):
                    ok += done
                    failed += refused
                case .observed(let lateness, let lapses, let count):
                    worst = lateness
                    withoutLease = lapses
                    samples = count
                }
            }
        }
        print(String(format: "worst tick lateness seen once a second: %.1f ms (idle before: %.1f ms); samples without the lease: %d of %d",
                     worst * 1_000, idle * 1_000, withoutLease, samples))
        let elapsed = (ContinuousClock.now - started) / .seconds(1)
        guard let after = await metrics(cluster, leader.name) else { throw CommandFailure("the leader's /metrics did not answer after the load") }
        let late = (after["pgquorum_raft_ticks_late_total"] ?? 0) - (before["pgquorum_raft_ticks_late_total"] ?? 0)
        let changes = (after["pgquorum_raft_leader_changes_total"] ?? 0) - (before["pgquorum_raft_leader_changes_total"] ?? 0)
        print(String(format: "linearizable /cluster answered: %d (%.0f per second), failed: %d", ok, Double(ok) / elapsed, failed))
        print(String(format: "ticks processed late during the load: %.0f of about %.0f; leader changes seen by the leader: %.0f; still leading: %@",
                     late, elapsed * 10, changes, await cluster.view(of: leader.name)?.leader == leader.name ? "yes" : "no"))
    }

    /// The leader's Prometheus metrics, by name (labels dropped: one node's own).
    private func metrics(_ cluster: LocalCluster, _ node: String) async -> [String: Double]? {
        guard let answer = await cluster.get(node, path: "/metrics"), answer.status == 200 else { return nil }
        var values: [String: Double] = [:]
        for line in answer.body.split(separator: "\n") where !line.hasPrefix("#") {
            let parts = line.split(separator: " ")
            guard parts.count == 2, let value = Double(parts[1]) else { continue }
            let name = parts[0].split(separator: "{").first.map(String.init) ?? String(parts[0])
            values[name] = value
        }
        return values
    }
}
