import Foundation
import RaftCore
import Yams

/// One thing wrong with a configuration file, with the line it is on when known.
public struct ConfigProblem: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    public var line: Int?
    public var message: String

    public init(file: String, line: Int? = nil, message: String) {
        self.file = file
        self.line = line
        self.message = message
    }

    public var description: String { line.map { "\(file):\($0): \(message)" } ?? "\(file): \(message)" }
}

/// Every problem found in a file, in file order: the loader reports all of them at once, so an
/// operator fixes the file in one pass.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var problems: [ConfigProblem]
    public var description: String { problems.map(\.description).joined(separator: "\n") }
}

/// Which TLS files must exist for a config to be valid.
public enum TLSFileCheck: Sendable, Equatable {
    /// None (validating a file away from its machines).
    case skip
    /// `ca.crt` and every node's certificate and key (the machine where `certs init` ran).
    case allNodes
    /// `ca.crt` and this node's certificate and key: what its agent needs.
    case node(String)
}

public enum ConfigLoader {
    /// Reads and validates `path`. Relative paths inside the file are relative to the file's
    /// directory.
    public static func load(path: String, tlsFiles: TLSFileCheck = .allNodes) throws(ConfigError) -> ClusterConfig {
        let absolute = absolutePath(path, relativeTo: FileManager.default.currentDirectoryPath)
        guard let data = FileManager.default.contents(atPath: absolute) else {
            throw ConfigError(problems: [ConfigProblem(file: path, message: "cannot read the file (does it exist?)")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(problems: [ConfigProblem(file: path, message: "not UTF-8 text")])
        }
        return try parse(text, path: absolute, displayName: path, tlsFiles: tlsFiles)
    }

    public static func parse(_ text: String, path: String, displayName: String? = nil,
                             tlsFiles: TLSFileCheck = .allNodes) throws(ConfigError) -> ClusterConfig {
        var reader = ConfigReader(file: displayName ?? path, baseDirectory: directory(of: path))
        let root: Node?
        do {
            root = try Yams.compose(yaml: text)
        } catch {
            throw ConfigError(problems: [ConfigProblem(file: displayName ?? path, message: "not valid YAML: \(oneLine(error))")])
        }
        guard let root else {
            throw ConfigError(problems: [ConfigProblem(file: displayName ?? path, message: "the file is empty")])
        }
        let config = reader.cluster(root, path: path)
        if let config { reader.validate(config, tlsFiles: tlsFiles) }
        guard reader.problems.isEmpty, let config else { throw ConfigError(problems: reader.problems) }
        return config
    }

    static func absolutePath(_ path: String, relativeTo base: String) -> String {
        let joined = path.hasPrefix("/") ? path : base + "/" + path
        return URL(fileURLWithPath: joined).standardizedFileURL.path
    }

    static func directory(of path: String) -> String {
        URL(fileURLWithPath: path).deletingLastPathComponent().standardizedFileURL.path
    }

    private static func oneLine(_ error: any Error) -> String {
        "\(error)".split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.joined(separator: " ")
    }
}

/// Walks the YAML tree, collecting problems instead of stopping at the first.
private struct ConfigReader {
    let file: String
    let baseDirectory: String
    var problems: [ConfigProblem] = []

    init(file: String, baseDirectory: String) {
        self.file = file
        self.baseDirectory = baseDirectory
    }

    mutating func problem(_ node: Node?, _ message: String) {
        problems.append(ConfigProblem(file: file, line: node?.mark.map { $0.line }, message: message))
    }

    // MARK: Document

    mutating func cluster(_ root: Node, path: String) -> ClusterConfig? {
        guard let top = mapping(root, "the top level", keys: ["cluster", "tls", "data_dir", "api", "timing", "raft", "failover", "alerts", "postgresql", "nodes"]) else { return nil }
        let name = string(top["cluster"], "cluster", required: true) ?? ""
        if !name.isEmpty, !ConfigReader.isIdentifier(name) {
            problem(top["cluster"], "cluster: \"\(name)\" may only hold lower-case letters, digits, '-' and '_'")
        }
        var tlsDirectory = ""
        if let tls = mapping(top["tls"], "tls", keys: ["dir"], required: true) {
            tlsDirectory = string(tls["dir"], "tls.dir", required: true).map(resolve) ?? ""
        }
        let dataDirectory = string(top["data_dir"], "data_dir").map(resolve)
        var timing = Timing()
        if let section = mapping(top["timing"], "timing", keys: ["heartbeat_ms", "election_timeout_ms"]) {
            timing.heartbeatMilliseconds = int(section["heartbeat_ms"], "timing.heartbeat_ms") ?? timing.heartbeatMilliseconds
            timing.electionTimeoutMilliseconds = int(section["election_timeout_ms"], "timing.election_timeout_ms") ?? timing.electionTimeoutMilliseconds
        }
        var raftLog = RaftLogSettings()
        if let section = mapping(top["raft"], "raft", keys: ["snapshot_entries", "keep_entries"]) {
            if let entries = int(section["snapshot_entries"], "raft.snapshot_entries") {
                if entries < 10 || entries > 10_000_000 {
                    problem(section["snapshot_entries"], "raft.snapshot_entries: \(entries) is outside 10...10000000 (applied entries between snapshots)")
                } else {
                    raftLog.snapshotEntries = entries
                }
            }
            if let keep = int(section["keep_entries"], "raft.keep_entries") {
                if keep < 0 || keep > 10_000_000 {
                    problem(section["keep_entries"], "raft.keep_entries: \(keep) is outside 0...10000000 (entries kept behind a snapshot)")
                } else {
                    raftLog.keepEntries = keep
                }
            }
        }
        var healthPort: Int?
        var requireClientCertificate = false
        if let section = mapping(top["api"], "api", keys: ["health_port", "require_client_certificate"]) {
            healthPort = port(section["health_port"], "api.health_port")
            requireClientCertificate = bool(section["require_client_certificate"], "api.require_client_certificate") ?? false
        }
        var failover = FailoverSettings()
        if let section = mapping(top["failover"], "failover", keys: ["report_wait_ms"]),
           let wait = int(section["report_wait_ms"], "failover.report_wait_ms") {
            if wait < 0 || wait > 600_000 {
                problem(section["report_wait_ms"], "failover.report_wait_ms: \(wait) is outside 0...600000 (milliseconds; 0 never waits)")
            } else {
                failover.reportWaitMilliseconds = wait
            }
        }
        var alerts = AlertThresholds()
        if let section = mapping(top["alerts"], "alerts", keys: ["replication_lag_warning_s", "replication_lag_critical_s",
                                                                 "network_latency_warning_ms", "failed_connection_checks"]) {
            alerts.replicationLagWarningSeconds = double(section["replication_lag_warning_s"], "alerts.replication_lag_warning_s") ?? alerts.replicationLagWarningSeconds
            alerts.replicationLagCriticalSeconds = double(section["replication_lag_critical_s"], "alerts.replication_lag_critical_s") ?? alerts.replicationLagCriticalSeconds
            alerts.networkLatencyWarningMilliseconds = double(section["network_latency_warning_ms"], "alerts.network_latency_warning_ms") ?? alerts.networkLatencyWarningMilliseconds
            alerts.failedConnectionChecks = int(section["failed_connection_checks"], "alerts.failed_connection_checks") ?? alerts.failedConnectionChecks
        }
        let postgres = self.postgres(top["postgresql"])
        var nodes: [NodeConfig] = []
        if let list = top["nodes"] {
            if let sequence = list.sequence {
                for (position, item) in sequence.enumerated() {
                    if let node = self.node(item, position: position, dataDirectory: dataDirectory, healthPort: healthPort) { nodes.append(node) }
                }
                if sequence.isEmpty { problem(list, "nodes: the list is empty; describe every node of the cluster") }
            } else {
                problem(list, "nodes: expected a list of nodes")
            }
        } else {
            problem(root, "nodes: missing; describe every node of the cluster")
        }
        var config = ClusterConfig(cluster: name, nodes: nodes, tlsDirectory: tlsDirectory, timing: timing, alerts: alerts, postgres: postgres, path: path)
        config.failover = failover
        config.raftLog = raftLog
        config.requireClientCertificate = requireClientCertificate
        return config
    }

    mutating func postgres(_ node: Node?) -> PostgresSettings {
        var settings = PostgresSettings()
        guard let map = mapping(node, "postgresql", keys: [
            "bin_dir", "os_user", "superuser", "replication_user", "passfile", "database", "maximum_lag_on_failover",
            "health_check_failures", "restart_timeout_s", "allow_reclone", "insecure_trust", "parameters", "hba",
        ]) else { return settings }
        settings.binDirectory = string(map["bin_dir"], "postgresql.bin_dir").map(resolve) ?? settings.binDirectory
        settings.osUser = string(map["os_user"], "postgresql.os_user") ?? settings.osUser
        for (key, what) in [("superuser", "postgresql.superuser"), ("replication_user", "postgresql.replication_user"),
                            ("database", "postgresql.database")] {
            guard let value = string(map[key], what) else { continue }
            // Names go into SQL and connection strings: keep them plain.
            guard ConfigReader.isIdentifier(value) else {
                problem(map[key], "\(what): \"\(value)\" may only hold lower-case letters, digits, '-' and '_'")
                continue
            }
            switch key {
            case "superuser": settings.superuser = value
            case "replication_user": settings.replicationUser = value
            default: settings.database = value
            }
        }
        settings.passfile = string(map["passfile"], "postgresql.passfile").map(resolve)
        if let lag = int(map["maximum_lag_on_failover"], "postgresql.maximum_lag_on_failover") {
            if lag < 0 { problem(map["maximum_lag_on_failover"], "postgresql.maximum_lag_on_failover: \(lag) is negative (bytes)") }
            settings.maximumLagOnFailoverBytes = UInt64(max(0, lag))
        }
        if let failures = int(map["health_check_failures"], "postgresql.health_check_failures") {
            if failures < 1 { problem(map["health_check_failures"], "postgresql.health_check_failures must be at least 1") }
            settings.healthCheckFailures = failures
        }
        if let timeout = double(map["restart_timeout_s"], "postgresql.restart_timeout_s") {
            if !(timeout > 0) { problem(map["restart_timeout_s"], "postgresql.restart_timeout_s must be positive") }
            settings.restartTimeoutSeconds = timeout
        }
        settings.allowReclone = bool(map["allow_reclone"], "postgresql.allow_reclone") ?? false
        settings.insecureTrust = bool(map["insecure_trust"], "postgresql.insecure_trust") ?? false
        if settings.insecureTrust, settings.passfile != nil {
            problem(map["insecure_trust"], "postgresql.insecure_trust: true contradicts postgresql.passfile (passwords are used); remove one of them")
        }
        if let hba = map["hba"] {
            if let lines = hba.sequence {
                for line in lines {
                    guard let text = line.scalar?.string, !text.contains("\n"), text.split(separator: " ").count >= 3 else {
                        problem(line, "postgresql.hba: each entry is one pg_hba.conf line, e.g. \"host all app 10.0.0.0/8 scram-sha-256\"")
                        continue
                    }
                    settings.hbaLines.append(text)
                }
            } else {
                problem(hba, "postgresql.hba: expected a list of pg_hba.conf lines")
            }
        }
        if let parameters = map["parameters"] {
            if let entries = parameters.mapping {
                for (key, value) in entries {
                    guard let name = key.string else { problem(key, "postgresql.parameters: keys must be strings"); continue }
                    if PostgresSettings.reservedParameters.contains(name) {
                        problem(key, "postgresql.parameters.\(name): set by the agent itself; remove it from the file")
                        continue
                    }
                    guard let text = value.scalar?.string, !text.contains("\n"), !text.contains("'") else {
                        problem(value, "postgresql.parameters.\(name): expected one value on one line, without quotes")
                        continue
                    }
                    settings.parameters[name] = text
                }
            } else {
                problem(parameters, "postgresql.parameters: expected a mapping of setting names to values")
            }
        }
        return settings
    }

    mutating func node(_ item: Node, position: Int, dataDirectory: String?, healthPort: Int?) -> NodeConfig? {
        let place = "nodes[\(position)]"
        guard let map = mapping(item, place, keys: ["name", "label", "location", "host", "agent_port", "api_port",
                                                     "postgres_port", "health_port", "priority", "tags", "data_dir"]) else { return nil }
        guard let name = string(map["name"], "\(place).name", required: true) else { return nil }
        let at = "node \(name)"
        if !ConfigReader.isIdentifier(name) {
            problem(map["name"], "\(at): the name may only hold lower-case letters, digits, '-' and '_'")
        }
        var noFailover = false
        var replicateFrom: String?
        var addressCheck = NodeConfig.PeerAddressCheck.configuredHost
        if let tags = mapping(map["tags"], "\(at): tags", keys: ["nofailover", "replicate_from", "peer_address_check"]) {
            noFailover = bool(tags["nofailover"], "\(at): tags.nofailover") ?? false
            replicateFrom = string(tags["replicate_from"], "\(at): tags.replicate_from")
            addressCheck = peerAddressCheck(tags["peer_address_check"], "\(at): tags.peer_address_check")
        }
        var directory = string(map["data_dir"], "\(at): data_dir").map(resolve)
        if directory == nil, let dataDirectory { directory = dataDirectory + "/" + name }
        if directory == nil {
            problem(item, "\(at): no data directory; set data_dir at the top level (each node uses <data_dir>/<name>) or on the node")
        }
        var node = NodeConfig(
            name: name,
            label: string(map["label"], "\(at): label") ?? "",
            location: string(map["location"], "\(at): location") ?? "",
            host: string(map["host"], "\(at): host", required: true) ?? "",
            agentPort: port(map["agent_port"], "\(at): agent_port") ?? NodeConfig.defaultAgentPort,
            apiPort: port(map["api_port"], "\(at): api_port") ?? NodeConfig.defaultAPIPort,
            postgresPort: port(map["postgres_port"], "\(at): postgres_port"),
            priority: int(map["priority"], "\(at): priority") ?? 0,
            noFailover: noFailover,
            replicateFrom: replicateFrom,
            dataDirectory: directory ?? ""
        )
        node.healthPort = port(map["health_port"], "\(at): health_port") ?? healthPort
        node.peerAddressCheck = addressCheck
        return node
    }

    /// `true` (the default: the host's addresses), `false` (off), or a list of IP addresses.
    mutating func peerAddressCheck(_ node: Node?, _ what: String) -> NodeConfig.PeerAddressCheck {
        guard let node else { return .configuredHost }
        if let items = node.sequence {
            var addresses: [String] = []
            for item in items {
                guard let text = item.scalar?.string, NodeConfig.isIPAddress(text) else {
                    problem(item, "\(what): each entry must be an IP address (the source address this node's agent connects from)")
                    continue
                }
                addresses.append(text)
            }
            if addresses.isEmpty, items.isEmpty { problem(node, "\(what): an empty list would refuse the node everywhere; use false to turn the check off") }
            return .addresses(addresses)
        }
        guard let on = bool(node, what) else { return .configuredHost }
        return on ? .configuredHost : .off
    }

    // MARK: Rules across keys

    mutating func validate(_ config: ClusterConfig, tlsFiles: TLSFileCheck) {
        let timing = config.timing
        if timing.heartbeatMilliseconds < 10 {
            problem(nil, "timing.heartbeat_ms: \(timing.heartbeatMilliseconds) is below 10 ms; the agents would spend their time on heartbeats")
        } else if timing.heartbeatMilliseconds > 10_000 {
            problem(nil, "timing.heartbeat_ms: \(timing.heartbeatMilliseconds) is above 10000 ms; a failure would take minutes to notice")
        } else if timing.electionTimeoutMilliseconds > 600_000 {
            problem(nil, "timing.election_timeout_ms: \(timing.electionTimeoutMilliseconds) is above 600000 ms (10 minutes)")
        } else if timing.electionTimeoutMilliseconds < 5 * timing.heartbeatMilliseconds {
            problem(nil, "timing.election_timeout_ms: \(timing.electionTimeoutMilliseconds) is below 5 × heartbeat_ms (\(5 * timing.heartbeatMilliseconds)); a few lost heartbeats would start elections")
        } else if timing.heartbeatMilliseconds > 0, timing.electionTimeoutMilliseconds % timing.heartbeatMilliseconds != 0 {
            // Timers count whole heartbeat intervals; say so rather than round silently.
            problem(nil, "timing.election_timeout_ms: \(timing.electionTimeoutMilliseconds) is not a multiple of heartbeat_ms (\(timing.heartbeatMilliseconds))")
        }
        let alerts = config.alerts
        // Written so that NaN fails too.
        if !(alerts.replicationLagWarningSeconds > 0) || !(alerts.replicationLagCriticalSeconds >= alerts.replicationLagWarningSeconds) {
            problem(nil, "alerts: replication_lag_warning_s must be positive and at most replication_lag_critical_s")
        }
        if !(alerts.networkLatencyWarningMilliseconds > 0) { problem(nil, "alerts.network_latency_warning_ms must be positive") }
        if alerts.failedConnectionChecks < 1 { problem(nil, "alerts.failed_connection_checks must be at least 1") }

        var names: Set<String> = []
        var endpoints: [String: String] = [:]
        var ids: [NodeID: String] = [:]
        var directories: [String: String] = [:]
        for node in config.nodes {
            if !names.insert(node.name).inserted { problem(nil, "node \(node.name): the name appears twice") }
            if let other = ids[node.id], other != node.name {
                problem(nil, "node \(node.name): its identity collides with node \(other); rename one of them")
            }
            ids[node.id] = node.name
            if node.priority < 0 { problem(nil, "node \(node.name): priority \(node.priority) is negative; 0 is the most preferred") }
            let ports = [("agent_port", node.agentPort), ("api_port", node.apiPort)] + (node.postgresPort.map { [("postgres_port", $0)] } ?? [])
                + (node.healthPort.map { [("health_port", $0)] } ?? [])
            for (key, port) in ports {
                let endpoint = "\(node.host):\(port)"
                if let owner = endpoints[endpoint] {
                    problem(nil, "node \(node.name): \(key) \(endpoint) is already used by \(owner)")
                } else {
                    endpoints[endpoint] = "node \(node.name) (\(key))"
                }
            }
            if let owner = directories[node.dataDirectory], !node.dataDirectory.isEmpty {
                problem(nil, "node \(node.name): data directory \(node.dataDirectory) is also node \(owner)'s")
            }
            directories[node.dataDirectory] = node.name
            if let port = node.postgresPort,
               NodeConfig.postgresSocketPath(dataDirectory: node.dataDirectory, port: port).utf8.count > NodeConfig.maximumSocketPathBytes {
                problem(nil, "node \(node.name): data directory \(node.dataDirectory) is too long for PostgreSQL's socket path (at most \(NodeConfig.maximumSocketPathBytes) bytes with /run/.s.PGSQL.\(port)); choose a shorter data_dir")
            }
            if let source = node.replicateFrom {
                if source == node.name {
                    problem(nil, "node \(node.name): tags.replicate_from names the node itself")
                } else if let upstream = config.node(named: source) {
                    if upstream.isWitness { problem(nil, "node \(node.name): tags.replicate_from names \(source), a witness without PostgreSQL") }
                } else {
                    problem(nil, "node \(node.name): tags.replicate_from names \(source), which is not a node of this cluster")
                }
            }
        }
        guard !config.tlsDirectory.isEmpty else { return }
        let owners: [NodeConfig]
        switch tlsFiles {
        case .skip: return
        case .allNodes: owners = config.nodes
        case .node(let name): owners = config.nodes.filter { $0.name == name }
        }
        let exists = { (name: String) in FileManager.default.fileExists(atPath: config.tlsDirectory + "/" + name) }
        let missingNodes = owners.filter { !exists("\($0.name).crt") || !exists("\($0.name).key") }
        let missing = (exists("ca.crt") ? [] : ["ca.crt"]) + missingNodes.flatMap { node in
            ["\(node.name).crt", "\(node.name).key"].filter { !exists($0) }
        }
        guard !missing.isEmpty else { return }
        let fix: String
        if !exists("ca.crt") {
            fix = "create the CA and the certificates with `pgquorum certs init --config \(file)` (or copy them from where they were made)"
        } else {
            // `certs issue` needs ca.key, which stays on the machine where the CA was made.
            let nodes = missingNodes.map { "\($0.name)=\($0.host)" }.joined(separator: ",")
            fix = "copy them from the machine that holds ca.key, or issue them there with `pgquorum certs issue --config \(file) --nodes \(nodes)` (move a half-present pair aside first)"
        }
        problem(nil, "tls.dir: missing \(missing.joined(separator: ", ")) in \(config.tlsDirectory); \(fix)")
    }

    // MARK: Scalars

    static func isIdentifier(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= 63 && text.unicodeScalars.allSatisfy {
            ("a"..."z").contains($0) || ("0"..."9").contains($0) || $0 == "-" || $0 == "_"
        }
    }

    func resolve(_ path: String) -> String { ConfigLoader.absolutePath(path, relativeTo: baseDirectory) }

    mutating func mapping(_ node: Node?, _ what: String, keys: Set<String>, required: Bool = false) -> Node.Mapping? {
        guard let node else {
            if required { problem(nil, "\(what): missing") }
            return nil
        }
        guard let map = node.mapping else {
            problem(node, "\(what): expected a mapping of keys to values")
            return nil
        }
        for key in map.keys {
            guard let name = key.string else { problem(key, "\(what): keys must be strings"); continue }
            if !keys.contains(name) {
                problem(key, "\(what): unknown key '\(name)' (known: \(keys.sorted().joined(separator: ", ")))")
            }
        }
        return map
    }

    mutating func scalar(_ node: Node?, _ what: String, required: Bool) -> Node.Scalar? {
        guard let node else {
            if required { problem(nil, "\(what): missing") }
            return nil
        }
        guard let scalar = node.scalar else {
            problem(node, "\(what): expected a single value")
            return nil
        }
        if node.null != nil && scalar.style == .plain {
            if required { problem(node, "\(what): missing a value") }
            return nil
        }
        return scalar
    }

    mutating func string(_ node: Node?, _ what: String, required: Bool = false) -> String? {
        guard let value = scalar(node, what, required: required)?.string else { return nil }
        if required, value.isEmpty { problem(node, "\(what): must not be empty") }
        return value
    }

    mutating func int(_ node: Node?, _ what: String) -> Int? {
        guard scalar(node, what, required: false) != nil else { return nil }
        guard let value = node?.int else { problem(node, "\(what): expected a whole number"); return nil }
        return value
    }

    mutating func double(_ node: Node?, _ what: String) -> Double? {
        guard scalar(node, what, required: false) != nil else { return nil }
        guard let value = node?.int.map(Double.init) ?? node?.float else { problem(node, "\(what): expected a number"); return nil }
        return value
    }

    mutating func bool(_ node: Node?, _ what: String) -> Bool? {
        guard scalar(node, what, required: false) != nil else { return nil }
        guard let value = node?.bool else { problem(node, "\(what): expected true or false"); return nil }
        return value
    }

    mutating func port(_ node: Node?, _ what: String) -> Int? {
        guard let value = int(node, what) else { return nil }
        guard (1...65_535).contains(value) else { problem(node, "\(what): \(value) is not a TCP port (1–65535)"); return nil }
        return value
    }
}
