import Agent
import ArgumentParser
import ClusterConfig
import Foundation

struct SwitchoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchover",
        abstract: "Move the leadership to another node on purpose (planned maintenance).",
        discussion: """
            Finds the leader, then asks it (POST /switchover, with a client certificate from the \
            cluster CA) to hand leadership to --to NODE, or to the most up-to-date, most \
            preferred voter it hears from. Returns once another node leads. The agents run as \
            witnesses for now: once PostgreSQL is managed, the primary moves with the leadership.
            """
    )

    @Option(help: "The cluster config file.")
    var config: String

    @Option(help: "The node that should lead (default: the best other voter).")
    var to: String?

    @Option(name: .customLong("as"), help: "Present this node's certificate from tls.dir (default: the first node whose key is there).")
    var identity: String?

    func run() async throws {
        let loaded = try loadConfig(config)
        if let to, loaded.node(named: to) == nil {
            throw CommandFailure("no node \(to) in \(config) (its nodes: \(loaded.nodes.map(\.name).joined(separator: ", ")))")
        }
        let name = identity ?? loaded.nodes.first { FileManager.default.fileExists(atPath: loaded.tlsDirectory + "/\($0.name).key") }?.name
        guard let name else {
            throw CommandFailure("no node key in \(loaded.tlsDirectory) to present as a client certificate; run this on a node, or name one with --as")
        }
        let client: APIClient
        do {
            client = try APIClient(tlsDirectory: loaded.tlsDirectory, identity: name)
        } catch {
            throw CommandFailure("cannot load \(name)'s certificate from \(loaded.tlsDirectory): \(error)")
        }
        // The leader, as confirmed by a quorum (any node answers for it).
        var leader: String?
        for node in loaded.nodes {
            guard let answer = try? await client.get(host: node.host, port: node.apiPort, path: "/cluster", timeout: .milliseconds(1_500)),
                  answer.status == 200, let view = try? JSONDecoder().decode(ClusterView.self, from: Data(answer.body)),
                  view.linearizable, let name = view.leader else { continue }
            leader = name
            break
        }
        guard let leader, let leaderNode = loaded.node(named: leader) else {
            throw CommandFailure("no leader confirmed by a quorum; a switchover needs a working cluster (pgquorum status --config \(config))")
        }
        if let to, to == leader {
            print("\(leader) already leads")
            return
        }
        let path = "/switchover" + (to.map { "?to=\($0)" } ?? "")
        let timeout = Duration.milliseconds(Int64(2 * loaded.timing.electionTimeoutMilliseconds + 1_000))
        let answer: APIClient.Response
        do {
            answer = try await client.post(host: leaderNode.host, port: leaderNode.apiPort, path: path, timeout: timeout)
        } catch {
            throw CommandFailure("the leader \(leader) did not answer: \(error)")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Any]
        guard answer.status == 200, let now = object?["leader"] as? String else {
            throw CommandFailure("switchover refused by \(leader) (HTTP \(answer.status)): \(object?["error"] as? String ?? "no reason given")")
        }
        print("leadership moved from \(leader) to \(now)")
    }
}
