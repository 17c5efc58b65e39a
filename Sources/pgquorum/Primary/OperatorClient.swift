import Agent
import ClusterConfig
import Foundation

/// The CLI's side of the operator API for commands that act on the cluster: a client holding an
/// operator certificate, the leader confirmed by a quorum, and waiting for the primary to move.
struct OperatorClient {
    let config: ClusterConfig
    let configPath: String
    let client: APIClient

    /// `operatorName`: whose certificate to present from `<tls.dir>/operators` (default: the
    /// only one there, or the one named like the login user).
    init(configPath: String, operatorName: String?) throws {
        let loaded = try loadConfig(configPath)
        let name: String
        do {
            name = try APIClient.chooseOperator(tlsDirectory: loaded.tlsDirectory, named: operatorName, loginName: Self.loginName())
        } catch {
            throw CommandFailure("\(error)")
        }
        do {
            client = try APIClient(tlsDirectory: loaded.tlsDirectory, operator: name)
        } catch {
            throw CommandFailure("cannot load \(loaded.tlsDirectory)/operators/\(name).crt and .key: \(error); check them with pgquorum certs check --config \(configPath)")
        }
        config = loaded
        self.configPath = configPath
    }

    /// Who runs the command (under sudo the one who ran sudo, else `$USER`, else the password
    /// database), to pick their certificate.
    static func loginName() -> String? {
        let environment = ProcessInfo.processInfo.environment
        for variable in ["SUDO_USER", "USER"] {
            if let user = environment[variable], !user.isEmpty { return user }
        }
        guard let entry = getpwuid(getuid()), let name = entry.pointee.pw_name else { return nil }
        return String(cString: name)
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
