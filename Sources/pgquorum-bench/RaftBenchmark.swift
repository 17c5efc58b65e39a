import ArgumentParser
import RaftCore

/// Throughput of the pure Raft core: three nodes in one process, messages handed over directly,
/// no I/O. It measures the algorithm's own cost, the ceiling under any transport and disk.
struct RaftBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "raft",
        abstract: "Committed proposals per second and idle ticks per second of an in-process three-node cluster."
    )

    @Option(help: "Proposals to commit in each throughput run.")
    var proposals = 200_000

    @Option(help: "Payload bytes per proposal.")
    var payloadBytes = 64

    @Option(help: "Ticks of the idle-cluster run.")
    var idleTicks = 200_000

    func run() throws {
        print("pgquorum-bench raft: 3 voters in one process, no I/O, payload \(payloadBytes) B")
        for window in [1, 64, 1024] {
            var cluster = try BenchCluster()
            let (count, seconds) = cluster.commit(proposals: window == 1 ? proposals / 10 : proposals,
                                                  window: window, payloadBytes: payloadBytes)
            print(line("commit, \(window) outstanding", Double(count) / seconds, "proposals/s",
                       "(\(count) in \(format(seconds)) s)"))
        }
        var idle = try BenchCluster()
        let seconds = idle.idle(ticks: idleTicks)
        print(line("idle cluster", Double(idleTicks) / seconds, "cluster ticks/s",
                   "(each tick: 3 node ticks + heartbeats + acks)"))
    }

    private func line(_ name: String, _ rate: Double, _ unit: String, _ detail: String) -> String {
        let label = name + String(repeating: " ", count: max(1, 28 - name.count))
        return "  \(label)\(Int(rate.rounded())) \(unit) \(detail)"
    }

    private func format(_ seconds: Double) -> String {
        let millis = Int((seconds * 1000).rounded())
        let fraction = String(millis % 1000)
        return String(millis / 1000) + "." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }
}

private struct BenchCluster {
    var nodes: [RaftNode]
    var mailbox: [Message] = []
    var leaderIndex = 0

    init() throws {
        let configuration = Configuration(voters: [1, 2, 3])
        var options = RaftOptions()
        options.maxInflightAppends = 256
        options.maxEntriesPerAppend = 256
        nodes = try (1...3).map { id in
            var perNode = options
            perNode.randomSeed = UInt64(id)
            return try RaftNode(id: NodeID(UInt64(id)), options: perNode, restoring: .bootstrap(configuration))
        }
        var ticks = 0
        while !nodes.contains(where: { $0.role == .leader }), ticks < 1_000 {
            for i in nodes.indices { nodes[i].tick() }
            settle()
            ticks += 1
        }
        leaderIndex = nodes.firstIndex { $0.role == .leader } ?? 0
        settle()
    }

    /// Proposes `proposals` entries keeping `window` uncommitted at a time; returns the count and seconds.
    mutating func commit(proposals: Int, window: Int, payloadBytes: Int) -> (Int, Double) {
        let payload = [UInt8](repeating: 0xAB, count: payloadBytes)
        let base = nodes[leaderIndex].commitIndex
        var proposed = 0
        let clock = ContinuousClock()
        let start = clock.now
        while nodes[leaderIndex].commitIndex < base + LogIndex(proposals) {
            let outstanding = Int(nodes[leaderIndex].lastIndex - nodes[leaderIndex].commitIndex)
            var room = window - outstanding
            while room > 0, proposed < proposals {
                _ = nodes[leaderIndex].propose(payload)
                proposed += 1
                room -= 1
            }
            settle()
        }
        return (proposals, (clock.now - start).seconds)
    }

    mutating func idle(ticks: Int) -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        for _ in 0..<ticks {
            for i in nodes.indices { nodes[i].tick() }
            settle()
        }
        return (clock.now - start).seconds
    }

    /// Runs Readys and delivers messages until the cluster is quiet.
    private mutating func settle() {
        repeat {
            for i in nodes.indices {
                while nodes[i].hasReady {
                    let ready = nodes[i].ready()
                    mailbox.append(contentsOf: ready.messages)
                    mailbox.append(contentsOf: ready.messagesAfterPersist)
                    nodes[i].advance(ready)
                }
            }
            let batch = mailbox
            mailbox.removeAll(keepingCapacity: true)
            for message in batch { nodes[Int(message.to.rawValue) - 1].step(message) }
        } while !mailbox.isEmpty || nodes.contains(where: \.hasReady)
    }

}
