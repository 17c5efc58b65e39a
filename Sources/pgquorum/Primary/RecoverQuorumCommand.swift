import Agent
import ArgumentParser
import ClusterConfig
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// `pgquorum recover-quorum NODE`: the explicit, unsafe recovery after a quorum loss. Never a
/// fallback of `failover --force`: a CLI that merely cannot get a confirmed view in time (an
/// election, a slow link) must not shrink the membership of a cluster whose majority is alive.
struct RecoverQuorumCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "recover-quorum",
        abstract: "After a quorum loss, make the survivor NODE the whole cluster and its primary (unsafe; asks for confirmation).",
        discussion: """
            Only when most voters are gone for good (docs/operations.md, "Disaster recovery: the \
            quorum is lost"). Refused while a leader is confirmed by a quorum. Shows NODE's own \
            view (its leader, when it last heard from each voter, its PostgreSQL position) and \
            asks for confirmation; --yes confirms in scripts. Then NODE shrinks the membership to \
            itself (stop the agents of other survivors first), raises the cluster generation and \
            promotes itself. Writes only the lost nodes had are lost; the lost nodes must stay \
            stopped until they can reach NODE, and rejoin as replicas then.
            """
    )

    @OptionGroup var options: PrimaryChangeOptions

    @Flag(help: "Confirm without asking (for scripts).")
    var yes = false

    var node: String { options.node }

    func run() async throws {
        let reason = options.reason
        let operatorClient = try options.client()
        let target = try operatorClient.requireNode(node)
        if let view = try? await operatorClient.confirmedView(), let leader = view.leader {
            throw CommandFailure("\(leader) leads in term \(view.term), confirmed by a quorum: the quorum is not lost; move the primary with pgquorum failover \(node) --reason TEXT")
        }
        let client = operatorClient.client
        let answer = try? await client.get(host: target.host, port: target.apiPort, path: "/cluster?stale=true", timeout: .seconds(2))
        guard let answer, answer.status == 200, let own = try? JSONDecoder().decode(ClusterView.self, from: Data(answer.body)) else {
            throw CommandFailure("\(node)'s agent does not answer at \(target.host):\(target.apiPort); the recovery runs on a live survivor")
        }
        print(Self.describe(own, node: node))
        guard yes || confirmInteractively() else {
            throw CommandFailure("not confirmed; nothing changed (--yes confirms in scripts)")
        }

        print("asking \(node) to recover on its own (writes only the lost nodes had are lost)")
        let path = "/recover-quorum?reason=" + OperatorClient.percentEncoded(reason)
        let posted: APIClient.Response
        do {
            posted = try await client.post(host: target.host, port: target.apiPort, path: path, timeout: .seconds(40))
        } catch {
            throw CommandFailure("\(node) did not answer the recovery request: \(error)")
        }
        guard posted.status == 200 else {
            let object = (try? JSONSerialization.jsonObject(with: Data(posted.body))) as? [String: Any] ?? [:]
            throw CommandFailure("recovery refused by \(node) (HTTP \(posted.status)): \(object["error"] as? String ?? "no reason given")")
        }
        guard let moved = await operatorClient.waitForNewPrimary(after: own.epoch, seconds: 30) else {
            throw CommandFailure("\(node) accepted the recovery but no new primary was confirmed within 30 s; check pgquorum status")
        }
        let voterRoles: Set<String> = ["leader", "follower", "candidate", "pre-candidate"]
        let voters: [String] = moved.members.filter { voterRoles.contains($0.role) }.map(\.name)
        print("primary is now \(moved.primary ?? "?") (epoch \(moved.epoch)); voters: \(voters.joined(separator: ", "))")
        print("keep the lost nodes stopped until they can reach \(node); they then rejoin as replicas (docs/operations.md, \"Disaster recovery\")")
    }

    /// NODE's own view, what the operator must judge before confirming.
    static func describe(_ view: ClusterView, node: String) -> String {
        var lines = ["\(node)'s own view: leader \(view.leader ?? "none"), term \(view.term), epoch \(view.epoch), primary \(view.primary ?? "none")"]
        for member in view.members {
            if member.name == node {
                let postgres = member.postgres.map { "PostgreSQL \($0.role), \($0.state), timeline \($0.timeline), received \($0.receivedLSN), replayed \($0.replayedLSN)" }
                lines.append("  \(member.name) (this node): \(postgres ?? "no PostgreSQL")")
            } else {
                let heard = member.lastContactMilliseconds.map { String(format: "last heard %.1f s ago", $0 / 1_000) } ?? "never heard from"
                lines.append("  \(member.name): \(member.state), \(heard)")
            }
        }
        lines.append("The lost voters' writes that \(node) lacks are gone for good; they must stay stopped until they can reach \(node).")
        return lines.joined(separator: "\n")
    }

    private func confirmInteractively() -> Bool {
        guard isatty(STDIN_FILENO) != 0 else { return false }
        print("Type \(node) to make it the whole cluster: ", terminator: "")
        return readLine()?.trimmingCharacters(in: .whitespaces) == node
    }
}
