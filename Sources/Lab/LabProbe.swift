import Agent
import ClusterConfig
import Foundation
import PostgresControl
import Synchronization
import WorkloadCheck
#if canImport(Glibc)
import Glibc
#endif

/// What a lab's nodes say about themselves, asked the way HAProxy and operators ask: the
/// Patroni-style health endpoints, `/history`, and PostgreSQL itself.
public final class LabProbe: Sendable {
    public let state: LabState
    private let client: APIClient
    /// The first time two nodes answered `/primary` with 200 in one round, if ever.
    private let twoPrimaries = Mutex<String?>(nil)

    public init(_ state: LabState) throws {
        self.state = state
        client = try APIClient(tlsDirectory: state.directory + "/tls")
    }

    private func status(_ node: String, _ path: String) async -> Int? {
        guard let address = state.node(node)?.address else { return nil }
        return try? await client.get(host: address, port: NodeConfig.defaultAPIPort, path: path, timeout: .milliseconds(500)).status
    }

    /// The node whose `/primary` answers 200 (writable, holding a valid lease), if exactly one does.
    public func primary() async -> String? {
        var found: [String] = []
        for node in state.nodes where await status(node.name, "/primary") == 200 { found.append(node.name) }
        if found.count > 1 {
            let seen = "\(found.joined(separator: " and ")) at \(ISO8601DateFormatter().string(from: Date()))"
            twoPrimaries.withLock { if $0 == nil { $0 = seen } }
        }
        return found.count == 1 ? found[0] : nil
    }

    /// Whether `node` answers `/primary` with 200 (writable, in its own view).
    public func answersPrimary(_ node: String) async -> Bool { await status(node, "/primary") == 200 }

    public func sawTwoPrimaries() async -> String? { twoPrimaries.withLock { $0 } }

    /// Whether `node` streams from the primary (`/replica` 200).
    public func isReplica(_ node: String) async -> Bool { await status(node, "/replica") == 200 }

    /// The primary, when there is one and every other node is a streaming replica of it.
    public func wholeClusterPrimary() async -> String? {
        guard let primary = await primary() else { return nil }
        for node in state.nodes where node.name != primary {
            guard await isReplica(node.name) else { return nil }
        }
        return primary
    }

    /// Waits until the cluster is whole (see `wholeClusterPrimary`); returns its primary.
    @discardableResult
    public func waitUntilWhole(within limit: Duration, what: String) async throws(LabError) -> String {
        var found: String?
        try await wait(within: limit, what: what) {
            found = await self.wholeClusterPrimary()
            return found != nil
        }
        return found ?? ""
    }

    /// The node's own view (`/cluster?stale=true`), or with `confirmed` the leader view it gets
    /// confirmed by a quorum (`/cluster`).
    public func view(_ node: String, confirmed: Bool = false) async -> ClusterView? {
        guard let address = state.node(node)?.address,
              let answer = try? await client.get(host: address, port: NodeConfig.defaultAPIPort,
                                                 path: confirmed ? "/cluster" : "/cluster?stale=true", timeout: .seconds(1)),
              answer.status == 200 else { return nil }
        return try? JSONDecoder().decode(ClusterView.self, from: Data(answer.body))
    }

    /// What the nodes already know is wrong: each node's own PostgreSQL error (an `initdb` or
    /// clone failure, say) as its agent reports it, or an agent that does not answer.
    public func knownProblems() async -> [String] {
        var problems: [String] = []
        for node in state.nodes {
            guard let view = await view(node.name) else {
                problems.append("\(node.name): its agent does not answer (see \(state.logPath(of: node.name)))")
                continue
            }
            if let error = view.members.first(where: { $0.name == node.name })?.postgres?.lastError {
                problems.append("\(node.name): \(error)")
            }
        }
        return problems
    }

    /// Polls `condition` every 100 ms until it holds; fails after `limit` with what the nodes
    /// report as wrong and the logs' place.
    public func wait(within limit: Duration, what: String, _ condition: () async -> Bool) async throws(LabError) {
        let deadline = ContinuousClock.now + limit
        while !(await condition()) {
            guard ContinuousClock.now < deadline else {
                let problems = await knownProblems()
                let known = problems.isEmpty ? "" : " (" + problems.joined(separator: "; ") + ")"
                throw LabError("\(what) did not happen within \(limit)\(known); the logs are in \(state.directory)/logs")
            }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    /// Whether the node's postmaster is gone within `limit`.
    public func postgresStops(on node: String, within limit: Duration) async -> Bool {
        let pidFile = state.postgresDirectory(of: node) + "/postmaster.pid"
        let deadline = ContinuousClock.now + limit
        while ContinuousClock.now < deadline {
            guard let text = try? String(contentsOfFile: pidFile, encoding: .utf8),
                  let pid = text.split(separator: "\n").first.flatMap({ Int32($0) }),
                  let process = Lab.processState(pid), process != "Z" else { return true }
            try? await Task.sleep(for: .milliseconds(20))
        }
        return false
    }

    /// The cluster history, as the primary's agent (or else any agent) reports it.
    public func promotions() async -> [WorkloadHistory.Promotion] {
        let primary = await primary()
        let order = (primary.map { [$0] } ?? []) + state.nodes.map(\.name).filter { $0 != primary }
        let parser = ISO8601DateFormatter()
        parser.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        for node in order {
            guard let address = state.node(node)?.address,
                  let answer = try? await client.get(host: address, port: NodeConfig.defaultAPIPort, path: "/history", timeout: .seconds(1)),
                  answer.status == 200,
                  let entries = try? JSONDecoder().decode([HistoryView].self, from: Data(answer.body)) else { continue }
            return entries.compactMap { entry in
                parser.date(from: entry.time).map {
                    .init(node: entry.primary, epoch: entry.epoch, at: $0.timeIntervalSince1970 * 1_000, reason: entry.reason)
                }
            }
        }
        return []
    }

    /// Every node's rows, once the replicas have caught up with the primary (bounded: 30 s).
    public func finalState() async -> (primary: String?, rows: [String: Set<Int64>]) {
        try? await waitUntilWhole(within: .seconds(60), what: "the cluster to be whole")
        let primary = await primary()
        var rows: [String: Set<Int64>] = [:]
        let deadline = ContinuousClock.now + .seconds(30)
        repeat {
            rows = [:]
            for node in state.nodes {
                let conninfo = "host=\(node.address) port=5432 user=postgres dbname=postgres connect_timeout=2"
                guard let result = try? PostgresConnection(conninfo).query("SELECT id FROM \(WorkloadClient.table)") else { continue }
                rows[node.name] = Set(result.compactMap { row in row.first.flatMap { $0 }.flatMap { Int64($0) } })
            }
            if let primary, let reference = rows[primary], state.nodes.allSatisfy({ rows[$0.name] == reference }) { break }
            try? await Task.sleep(for: .milliseconds(250))
        } while ContinuousClock.now < deadline
        return (primary, rows)
    }
}
