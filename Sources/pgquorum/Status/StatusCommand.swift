import Agent
import ArgumentParser
import ClusterConfig
import Foundation

struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the leader view: leader, cluster health and every server's state.",
        discussion: """
            Asks every agent of the config at once (or the one --endpoint) for the leader view and \
            prints it; answers within about 2 s even when nodes are down, and lists the nodes it \
            could not reach. By default the view is linearizable: confirmed by the leader with a \
            quorum. --stale prints a node's local view instead (works without a quorum). Chinese \
            output when the locale (LC_ALL, else LC_MESSAGES, else LANG) starts with zh.
            Exit codes: 0 healthy, 2 degraded (a member unreachable, or an agent that answers \
            without the leader view), 3 no leader, 4 no agent \
            reachable, 1 invalid config or CA file, 64 invalid arguments.
            """
    )

    @Option(help: "The cluster config file (every node is asked).")
    var config: String?

    @Option(help: "Ask only this agent, as https://HOST:PORT (needs --ca, or --config for its tls.dir).")
    var endpoint: String?

    @Option(help: "CA certificate that signed the agents' certificates (default: ca.crt in the config's tls.dir).")
    var ca: String?

    @Flag(help: "Print JSON (the same fields as GET /cluster, plus health and per-node probes).")
    var json = false

    @Flag(help: "Answer from a node's local state instead of confirming with the leader.")
    var stale = false

    @Option(name: .customLong("as"), help: "Present this operator's certificate from tls.dir/operators (default: the only one there, or the one named like your login; none if neither).")
    var operatorName: String?

    @Option(help: "Give up on an agent after this many milliseconds.")
    var timeoutMs = 1_500

    func validate() throws {
        if config == nil, endpoint == nil { throw ValidationError("give --config FILE or --endpoint https://HOST:PORT") }
        if config == nil, ca == nil { throw ValidationError("--endpoint needs --ca FILE (the cluster's ca.crt)") }
        if timeoutMs < 1 { throw ValidationError("--timeout-ms must be positive") }
        if let endpoint, Self.parse(endpoint: endpoint) == nil {
            throw ValidationError("--endpoint \(endpoint): expected https://HOST:PORT")
        }
    }

    func run() async throws {
        let loaded = try config.map { try loadConfig($0) }
        let targets: [(name: String, host: String, port: Int)]
        if let endpoint {
            guard let target = Self.parse(endpoint: endpoint) else { throw ExitCode.validationFailure }
            let name = loaded?.nodes.first { $0.host == target.host && $0.apiPort == target.port }?.name ?? "\(target.host):\(target.port)"
            targets = [(name, target.host, target.port)]
        } else {
            targets = (loaded?.nodes ?? []).map { ($0.name, $0.host, $0.apiPort) }
        }
        let caFile = ca ?? (loaded.map { $0.tlsDirectory + "/ca.crt" } ?? "")
        let client: APIClient
        do {
            if let loaded, ca == nil {
                // With the config and no --ca: the operator's certificate too, where one is there.
                client = try APIClient.reader(tlsDirectory: loaded.tlsDirectory, named: operatorName, loginName: OperatorClient.loginName())
            } else {
                client = try APIClient(caFile: caFile)
            }
        } catch {
            throw CommandFailure("cannot load the CA certificate \(caFile): \(error)")
        }

        let path = stale ? "/cluster?stale=true" : "/cluster"
        let timeout = Duration.milliseconds(timeoutMs)
        let answers = await withTaskGroup(of: (Int, StatusReport.Probe, ClusterView?).self) { group in
            for (position, target) in targets.enumerated() {
                group.addTask {
                    let endpoint = "https://\(target.host):\(target.port)"
                    do {
                        let response = try await client.get(host: target.host, port: target.port, path: path, timeout: timeout)
                        let view = response.status == 200 ? try? JSONDecoder().decode(ClusterView.self, from: Data(response.body)) : nil
                        let error = response.status == 200 ? nil : Self.errorText(response.body, status: response.status)
                        return (position, .init(node: target.name, endpoint: endpoint, httpStatus: response.status,
                                                responseMilliseconds: response.elapsed.milliseconds, error: error), view)
                    } catch {
                        return (position, .init(node: target.name, endpoint: endpoint, httpStatus: nil,
                                                responseMilliseconds: nil, error: "\(error)"), nil)
                    }
                }
            }
            var answers: [(Int, StatusReport.Probe, ClusterView?)] = []
            for await answer in group { answers.append(answer) }
            return answers.sorted { $0.0 < $1.0 }
        }
        let views = answers.compactMap(\.2)
        // Linearizable answers all come from the leader; stale ones prefer the node that leads.
        // With --stale, a deposed leader may still claim to lead: the highest term wins.
        let view = views.first { $0.linearizable }
            ?? views.filter { $0.leader == $0.answeredBy }.max { $0.term < $1.term }
            ?? views.max { $0.term < $1.term }
        let report = StatusReport(view: view, probes: answers.map(\.1), stale: stale)

        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            print(String(decoding: try encoder.encode(report), as: UTF8.self))
        } else {
            let members = view?.members ?? (loaded?.nodes ?? []).map {
                MemberView(name: $0.name, label: $0.label, location: $0.location, host: $0.host, apiPort: $0.apiPort,
                           priority: $0.priority, witness: $0.isWitness, role: "unknown", state: "unknown",
                           lastContactMilliseconds: nil, rttMilliseconds: nil, matchIndex: nil)
            }
            let chinese = Self.prefersChinese(ProcessInfo.processInfo.environment)
            print(report.render(chinese: chinese, members: members,
                                latencyWarningMilliseconds: loaded?.alerts.networkLatencyWarningMilliseconds))
        }
        if report.health != .healthy { throw ExitCode(report.health.exitCode) }
    }

    /// The POSIX order: LC_ALL, then LC_MESSAGES, then LANG; the first one set decides.
    static func prefersChinese(_ environment: [String: String]) -> Bool {
        let setting = ["LC_ALL", "LC_MESSAGES", "LANG"].lazy.compactMap { environment[$0] }.first { !$0.isEmpty }
        return setting?.hasPrefix("zh") ?? false
    }

    static func parse(endpoint: String) -> (host: String, port: Int)? {
        guard let url = URL(string: endpoint), url.scheme == "https", let host = url.host, let port = url.port else { return nil }
        return (host, port)
    }

    static func errorText(_ body: [UInt8], status: Int) -> String {
        let object = try? JSONSerialization.jsonObject(with: Data(body)) as? [String: Any]
        return "HTTP \(status)" + ((object?["error"] as? String).map { ": \($0)" } ?? "")
    }
}

