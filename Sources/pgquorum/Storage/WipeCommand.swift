import Agent
import ArgumentParser
import ClusterConfig
import Foundation
import RaftCore
import RaftStorage
#if canImport(Glibc)
import Glibc
#endif

/// `pgquorum storage wipe`: replaces a node's damaged Raft state with a fresh one that cannot
/// break what the old one promised, after checking with the rest of the cluster that it may.
struct WipeStorage: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wipe",
        abstract: "Set a node's Raft state aside and start it afresh, only if the cluster can do without it.",
        discussion: """
            For a node whose Raft state is corrupt (docs/storage.md, "Recovering a node"). Refuses \
            unless: the node's agent is stopped; a leader confirms its view with a quorum and no \
            longer hears from the node; the voters other than this node that hold every committed \
            entry and every entry this node acknowledged form a quorum (so nothing committed \
            depends on this node's lost copy); and every other voter answers, so the highest term \
            anyone has reached is known. The old state is moved aside (never deleted) and the new \
            state starts in that term with its vote already cast, so the node can never vote twice \
            in a term it may have voted in before, and with a vote floor, so it never vouches for a \
            candidate that lacks what it once held. Without --yes it only reports what it would do.
            """
    )

    @Option(help: "The cluster config file.")
    var config: String

    @Option(name: .customLong("as"), help: "Present this operator's certificate from tls.dir/operators (default: the only one there, or the one named like your login; none if neither).")
    var operatorName: String?

    @Option(help: "The node whose Raft state to replace.")
    var node: String

    @Flag(help: "Do it (otherwise only check and report).")
    var yes = false

    func run() async throws {
        let loaded = try loadConfig(config)
        guard let local = loaded.node(named: node) else {
            throw CommandFailure("node '\(node)' is not in \(config) (its nodes: \(loaded.nodes.map(\.name).joined(separator: ", ")))")
        }
        // 1. The agent must be stopped, and stay stopped while we work: hold its lock.
        let lockPath = local.dataDirectory + "/agent.lock"
        let lock = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard lock >= 0 else { throw CommandFailure("cannot open \(lockPath): \(String(cString: strerror(errno)))") }
        defer { close(lock) }
        guard flock(lock, LOCK_EX | LOCK_NB) == 0 else {
            throw CommandFailure("the agent of \(node) is running (it holds \(lockPath)); stop it first")
        }

        // 2. Every other voter's own term, and the leader's confirmed view.
        let client: APIClient
        do {
            client = try APIClient.reader(tlsDirectory: loaded.tlsDirectory, named: operatorName, loginName: OperatorClient.loginName())
        } catch {
            throw CommandFailure("cannot load \(loaded.tlsDirectory)/ca.crt: \(error)")
        }
        let others = loaded.nodes.filter { $0.name != node }
        var terms: [String: UInt64] = [:]
        var ownCommit: [String: UInt64] = [:]
        var leaderView: ClusterView?
        var unreachable: [String] = []
        for other in others {
            let stale = try? await client.get(host: other.host, port: other.apiPort, path: "/cluster?stale=true", timeout: .seconds(2))
            guard let stale, stale.status == 200, let view = try? JSONDecoder().decode(ClusterView.self, from: Data(stale.body)) else {
                unreachable.append(other.name)
                continue
            }
            terms[other.name] = view.term
            ownCommit[other.name] = view.commitIndex
            if leaderView == nil, let linear = try? await client.get(host: other.host, port: other.apiPort, path: "/cluster", timeout: .seconds(2)),
               linear.status == 200, let confirmed = try? JSONDecoder().decode(ClusterView.self, from: Data(linear.body)), confirmed.linearizable {
                leaderView = confirmed
            }
        }
        guard unreachable.isEmpty else {
            throw CommandFailure("cannot reach \(unreachable.joined(separator: ", ")): every other voter must answer, or the terms \(node) may have voted in are unknown; bring them back first")
        }
        guard let leaderView, let leader = leaderView.leader, leader != node else {
            throw CommandFailure("no leader confirmed by a quorum; the cluster must be healthy without \(node) before its state is replaced")
        }
        // 3. Nothing the old state sent may still be on its way to the leader, to be counted.
        if let seen = leaderView.members.first(where: { $0.name == node }), seen.state != "unreachable" {
            throw CommandFailure("\(leader) still hears from \(node) (\(seen.state)): messages of its old state may still be on their way; wait until pgquorum status shows it unreachable, then run this again")
        }

        // 4. Nothing may depend on this node's copy (WipeRule).
        let quorum = loaded.nodes.count / 2 + 1
        var holdings: [String: WipeRule.Holding] = [:]
        for member in leaderView.members where member.name != node {
            holdings[member.name] = WipeRule.Holding(match: member.matchIndex ?? 0, commit: ownCommit[member.name] ?? 0)
        }
        let verdict = WipeRule.check(commitIndex: leaderView.commitIndex,
                                     acknowledged: leaderView.members.first { $0.name == node }?.matchIndex ?? 0,
                                     others: holdings, quorum: quorum)
        let needed = verdict.needed
        let holders = verdict.holders
        guard verdict.safe else {
            throw CommandFailure("only \(holders.joined(separator: ", ")) hold every entry up to index \(needed) (committed, or acknowledged by \(node)); a quorum needs \(quorum): wait until the others catch up")
        }

        // 5. The new state: the highest term reached anywhere, its vote already cast.
        let directory = local.dataDirectory + "/raft"
        var term = terms.values.max() ?? 0
        if let old = try? RaftStorage.inspect(directory: directory), let state = old.recovered {
            term = max(term, state.hardState.term)
        }
        let voters = Set(loaded.nodes.map(\.id))
        var fresh = DurableState.bootstrap(Configuration(voters: voters))
        // The leader committed an entry of its own term (it confirmed the view), so its entry at
        // `needed` (at or after the commit index) is of its term.
        fresh.hardState = WipeRule.freshHardState(node: local.id, highestTerm: term, needed: needed, floorTerm: leaderView.term)
        print("leader \(leader) (term \(leaderView.term)) confirms the view; \(holders.joined(separator: ", ")) hold every entry up to index \(needed) (commit index \(leaderView.commitIndex)), quorum \(quorum)")
        print("highest term among the voters: \(term)")
        guard yes else {
            print("would move \(directory) aside and start \(node) afresh in term \(term) with its vote cast; run again with --yes to do it")
            return
        }
        let stamp = ISO8601DateFormatter().string(from: Date()).replacingOccurrences(of: ":", with: "")
        let aside = directory + ".wiped-" + stamp
        if FileManager.default.fileExists(atPath: directory) {
            do {
                try FileManager.default.moveItem(atPath: directory, toPath: aside)
            } catch {
                throw CommandFailure("cannot move \(directory) aside: \(error.localizedDescription)")
            }
            print("moved the old state to \(aside) (keep it for analysis)")
        }
        do {
            let storage = try RaftStorage.open(directory: directory, segmentBytes: RaftStorage.agentSegmentBytes)
            try storage.initialize(fresh)
        } catch {
            throw CommandFailure("cannot write the new state in \(directory): \(error)")
        }
        print("wrote fresh Raft state for \(node) in term \(term); start its agent: \(leader) finds its log empty and replicates it from the start")
    }
}
