import Agent
import ArgumentParser
import Foundation

struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List every promotion of the cluster: epoch, timeline, LSN, new primary, time and reason.",
        discussion: """
            Reads GET /history from the first agent that answers (the history is part of the \
            replicated cluster state, so every agent holds it; the leader's is the newest).
            """
    )

    @Option(help: "The cluster config file.")
    var config: String

    @Flag(help: "Print JSON (the body of GET /history).")
    var json = false

    @Option(name: .customLong("as"), help: "Present this operator's certificate from tls.dir/operators (default: the only one there, or the one named like your login; none if neither).")
    var operatorName: String?

    func run() async throws {
        let loaded = try loadConfig(config)
        let client: APIClient
        do {
            client = try APIClient.reader(tlsDirectory: loaded.tlsDirectory, named: operatorName, loginName: OperatorClient.loginName())
        } catch {
            throw CommandFailure("cannot load the CA from \(loaded.tlsDirectory): \(error)")
        }
        // Prefer the leader's copy: ask for the confirmed view first.
        var order = loaded.nodes
        for node in loaded.nodes {
            guard let answer = try? await client.get(host: node.host, port: node.apiPort, path: "/cluster?stale=true", timeout: .milliseconds(1_500)),
                  answer.status == 200, let view = try? JSONDecoder().decode(ClusterView.self, from: Data(answer.body)),
                  let leader = view.leader else { continue }
            order.sort { a, _ in a.name == leader }
            break
        }
        for node in order {
            guard let answer = try? await client.get(host: node.host, port: node.apiPort, path: "/history", timeout: .milliseconds(1_500)),
                  answer.status == 200, let entries = try? JSONDecoder().decode([HistoryView].self, from: Data(answer.body)) else { continue }
            if json {
                print(String(decoding: answer.body, as: UTF8.self), terminator: "")
                return
            }
            print(Self.table(entries))
            return
        }
        throw CommandFailure("no agent of \(config) answered; check pgquorum status --config \(config)")
    }

    static func table(_ entries: [HistoryView]) -> String {
        guard !entries.isEmpty else { return "no promotions yet (the cluster is not bootstrapped)" }
        let header = ["Epoch", "TL", "LSN", "Primary", "Time", "Reason"]
        let rows = entries.map { ["\($0.epoch)", "\($0.timeline)", $0.lsn, $0.primary, $0.time, $0.reason] }
        let widths = (0..<5).map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
        func line(_ cells: [String]) -> String {
            (0..<5).map { cells[$0].padding(toLength: widths[$0], withPad: " ", startingAt: 0) }.joined(separator: " | ") + " | " + cells[5]
        }
        return ([line(header)] + rows.map(line)).joined(separator: "\n")
    }
}
