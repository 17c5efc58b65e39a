import Agent
import ArgumentParser
import ClusterConfig
import Foundation

struct FailoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "failover",
        abstract: "Move the primary to NODE now, without waiting for it to catch up.",
        discussion: """
            Asks the leader (POST /failover) to make NODE the primary at once: the current primary \
            is fenced, leadership goes to NODE, and NODE is promoted in a new epoch. Refused, with \
            the reason, when NODE is not a safe candidate (down, on an older timeline, tagged \
            nofailover, or further behind than postgresql.maximum_lag_on_failover) — unless \
            --force is given, which promotes it anyway and loses the writes it lacks. The move and \
            its --reason are recorded in the cluster history (pgquorum history). Needs a quorum; \
            use pgquorum switchover for planned maintenance (no write lost).

            When the quorum is lost (no leader, most voters down), --force on a survivor is the \
            disaster recovery: NODE shrinks the membership to itself alone (stop the agents of \
            other survivors first), raises the cluster generation and promotes itself. Writes only the lost \
            nodes had are lost, and the lost nodes must stay stopped until they can reach NODE: \
            they rejoin as replicas then. See docs/operations.md, "Disaster recovery".
            """
    )

    @Argument(help: "The node to promote.")
    var node: String

    @Option(help: "Why (required; recorded in the cluster history).")
    var reason: String

    @Flag(help: "Promote NODE even if it is not a safe candidate (writes it lacks are lost).")
    var force = false

    @Option(help: "The cluster config file.")
    var config: String

    @Option(name: .customLong("as"), help: "Present this node's certificate from tls.dir (default: the first node whose key is there).")
    var identity: String?

    func validate() throws {
        if reason.trimmingCharacters(in: .whitespaces).isEmpty { throw ValidationError("--reason must say why; it is recorded in the cluster history") }
    }

    func run() async throws {
        let operatorClient = try OperatorClient(configPath: config, identity: identity)
        let target = try operatorClient.requireNode(node)
        let view: ClusterView
        do {
            view = try await operatorClient.confirmedView()
        } catch where force {
            return try await forcedRecovery(operatorClient, target: target)
        }
        if view.primary == node {
            print("\(node) is the primary already")
            return
        }
        var path = "/failover?to=\(node)&reason=" + OperatorClient.percentEncoded(reason)
        if force { path += "&force=true" }
        let timing = operatorClient.config.timing
        _ = try await operatorClient.postToLeader(view, path: path, what: "failover",
                                                  timeout: .milliseconds(Int64(max(40_000, 2 * timing.electionTimeoutMilliseconds + 1_000))))
        guard let moved = await operatorClient.waitForNewPrimary(after: view.epoch, seconds: 30) else {
            throw CommandFailure("no new primary was confirmed within 30 s; check pgquorum status")
        }
        print("primary moved from \(view.primary ?? "none") to \(moved.primary ?? "?") (epoch \(moved.epoch))")
    }

    /// No quorum: the request goes to NODE itself, which checks that the quorum is really lost.
    private func forcedRecovery(_ operatorClient: OperatorClient, target: NodeConfig) async throws {
        let client = operatorClient.client
        let before = try? await client.get(host: target.host, port: target.apiPort, path: "/cluster?stale=true", timeout: .milliseconds(1_500))
        guard let before, before.status == 200, let local = try? JSONDecoder().decode(ClusterView.self, from: Data(before.body)) else {
            throw CommandFailure("no leader confirmed by a quorum, and \(node)'s agent does not answer at \(target.host):\(target.apiPort); a forced recovery runs on a live survivor")
        }
        print("no quorum: asking \(node) to recover on its own (forced; writes only the lost nodes had are lost)")
        let path = "/failover?to=\(node)&force=true&reason=" + OperatorClient.percentEncoded(reason)
        let answer: APIClient.Response
        do {
            answer = try await client.post(host: target.host, port: target.apiPort, path: path, timeout: .seconds(40))
        } catch {
            throw CommandFailure("\(node) did not answer the forced recovery: \(error)")
        }
        guard answer.status == 200 else {
            let object = (try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Any] ?? [:]
            throw CommandFailure("forced recovery refused by \(node) (HTTP \(answer.status)): \(object["error"] as? String ?? "no reason given")")
        }
        guard let moved = await operatorClient.waitForNewPrimary(after: local.epoch, seconds: 30) else {
            throw CommandFailure("\(node) accepted the forced recovery but no new primary was confirmed within 30 s; check pgquorum status")
        }
        let voterRoles: Set<String> = ["leader", "follower", "candidate", "pre-candidate"]
        let voters: [String] = moved.members.filter { voterRoles.contains($0.role) }.map(\.name)
        print("primary is now \(moved.primary ?? "?") (epoch \(moved.epoch)); voters: \(voters.joined(separator: ", "))")
        print("keep the lost nodes stopped until they can reach \(node); they then rejoin as replicas (docs/operations.md, \"Disaster recovery\")")
    }
}
