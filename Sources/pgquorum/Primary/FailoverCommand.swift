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
            use pgquorum switchover for planned maintenance (no write lost). After a quorum loss, \
            see pgquorum recover-quorum.
            """
    )

    @OptionGroup var options: PrimaryChangeOptions

    @Flag(help: "Promote NODE even if it is not a safe candidate (writes it lacks are lost).")
    var force = false

    func run() async throws {
        let node = options.node, reason = options.reason
        let operatorClient = try options.client()
        _ = try operatorClient.requireNode(node)
        let view: ClusterView
        do {
            view = try await operatorClient.confirmedView()
        } catch {
            // Never a quorum-loss recovery by accident: that is its own command.
            throw CommandFailure("no leader confirmed by a quorum (an election, or the quorum is lost); if most voters are gone for good, see pgquorum recover-quorum \(node) --reason TEXT")
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
}
