import Agent
import ClusterConfig
import Foundation

/// The CLI's side of the operator API for commands that act on the cluster: a client holding a
/// node certificate, the leader confirmed by a quorum, and waiting for the primary to move.
struct OperatorClient {
    let config: ClusterConfig
    let configPath: String
    let client: APIClient

    /// `identity`: the node whose certificate to present (default: the first whose key is in tls.dir).
    init(configPath: String, identity: String?) throws {
        let loaded = try loadConfig(configPath)
        let name = identity ?? loaded.nodes.first { FileManager.default.fileExists(atPath: loaded.tlsDirectory + "/\($0.name).key") }?.name
        guard let name else {
            throw CommandFailure("no node key in \(loaded.tlsDirectory) to present as a client certificate; run this on a node, or name one with --as")
        }
        do {
            client = try APIClient(tlsDirectory: loaded.tlsDirectory, identity: name)
        } catch {
            throw CommandFailure("cannot load \(name)'s certificate from \(loaded.tlsDirectory): \(error)")
        }
        config = loaded
        self.configPath = configPath
    }

    func requireNode(_ name: String) throws -> NodeConfig {
        guard let node = config.node(named: name) else {
            throw CommandFailure("no node \(name) in \(configPath) (its nodes: \(config.nodes.map(\.name).joined(separator: ", ")))")
        }
        return node
    }

    /// The leader view confirmed by a quorum (any node answers for it).
    func confirmedView() async throws -> ClusterView {
        for node in config.nodes {
            guard let answer = try? await client.get(host: node.host, port: node.apiPort, path: "/cluster", timeout: .milliseconds(1_500)),
                  answer.status == 200, let view = try? JSONDecoder().decode(ClusterView.self, from: Data(answer.body)),
                  view.linearizable, view.leader != nil else { continue }
            return view
        }
        throw CommandFailure("no leader confirmed by a quorum; this needs a working cluster (pgquorum status --config \(configPath))")
    }

    /// POSTs `path` to the leader; returns the JSON answer, or throws its error line.
    func postToLeader(_ view: ClusterView, path: String, what: String, timeout: Duration) async throws -> [String: Any] {
        guard let leader = view.leader, let node = config.node(named: leader) else { throw CommandFailure("no leader known") }
        let answer: APIClient.Response
        do {
            answer = try await client.post(host: node.host, port: node.apiPort, path: path, timeout: timeout)
        } catch {
            throw CommandFailure("the leader \(leader) did not answer: \(error)")
        }
        let object = (try? JSONSerialization.jsonObject(with: Data(answer.body))) as? [String: Any] ?? [:]
        guard answer.status == 200 else {
            throw CommandFailure("\(what) refused by \(leader) (HTTP \(answer.status)): \(object["error"] as? String ?? "no reason given")")
        }
        return object
    }

    /// Waits (bounded) until a quorum-confirmed view names a primary in an epoch after `epoch`
    /// and that node's `/primary` answers 200 (promoted, writable).
    func waitForNewPrimary(after epoch: UInt64, seconds: Double) async -> ClusterView? {
        let deadline = ContinuousClock.now + .milliseconds(Int64(seconds * 1_000))
        while ContinuousClock.now < deadline {
            if let view = try? await confirmedView(), view.epoch > epoch, let primary = view.primary.flatMap({ config.node(named: $0) }),
               (try? await client.get(host: primary.host, port: primary.apiPort, path: "/primary", timeout: .milliseconds(1_000)))?.status == 200 {
                return view
            }
            try? await Task.sleep(for: .milliseconds(50))
        }
        return nil
    }

    static func percentEncoded(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: .alphanumerics.union(CharacterSet(charactersIn: "-._~"))) ?? text
    }
}
