import Agent
import ArgumentParser
import Foundation

struct SwitchoverCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "switchover",
        abstract: "Move the primary to another node on purpose (planned maintenance), losing no write.",
        discussion: """
            Finds the leader and asks it (POST /switchover, with a client certificate from the \
            cluster CA) to move the primary to --to NODE, or to the best other candidate. The old \
            primary stops cleanly (every connected replica receives its last WAL), the target \
            catches up fully, takes over the leadership and is promoted in a new epoch; the old \
            primary rejoins as a replica. Returns once the new primary is confirmed, and records \
            the move with its reason in the cluster history (pgquorum history). Before the \
            cluster is bootstrapped, only the leadership moves.
            """
    )

    @Option(help: "The cluster config file.")
    var config: String

    @Option(help: "The node that should become primary (default: the best other candidate).")
    var to: String?

    @Option(help: "Why (recorded in the cluster history).")
    var reason = "planned switchover"

    @Option(name: .customLong("as"), help: "Present this operator's certificate from tls.dir/operators (default: the only one there, or the one named like your login).")
    var operatorName: String?

    func run() async throws {
        let operatorClient = try OperatorClient(configPath: config, operatorName: operatorName)
        if let to { _ = try operatorClient.requireNode(to) }
        let view = try await operatorClient.confirmedView()
        if let to, to == view.primary || (view.epoch == 0 && to == view.leader) {
            print("\(to) is \(view.epoch == 0 ? "the leader" : "the primary") already")
            return
        }
        var query = ["reason=" + OperatorClient.percentEncoded(reason)]
        if let to { query.append("to=" + to) }
        let timing = operatorClient.config.timing
        // A clean stop and the target's catch-up come before the hand-over: allow 40 s.
        let answer = try await operatorClient.postToLeader(view, path: "/switchover?" + query.joined(separator: "&"), what: "switchover",
                                                           timeout: .milliseconds(Int64(max(40_000, 2 * timing.electionTimeoutMilliseconds + 1_000))))
        guard view.epoch > 0 else {
            print("leadership moved from \(view.leader ?? "?") to \(answer["leader"] as? String ?? "?")")
            return
        }
        guard let moved = await operatorClient.waitForNewPrimary(after: view.epoch, seconds: 30) else {
            throw CommandFailure("leadership moved to \(answer["leader"] as? String ?? "?"), but no new primary was confirmed within 30 s; check pgquorum status")
        }
        print("primary moved from \(view.primary ?? "none") to \(moved.primary ?? "?") (epoch \(moved.epoch))")
    }
}
