import RaftCore

/// One YAML file describes the whole cluster; every agent reads the same file and finds itself
/// in it by name (`pgquorum agent --config FILE --node NAME`). See docs/configuration.md.
public struct ClusterConfig: Sendable, Equatable {
    /// Recorded in every node certificate (`pgquorum://<cluster>/<node>`).
    public var cluster: String
    public var nodes: [NodeConfig]
    /// Directory of `ca.crt` and each node's `<name>.crt` / `<name>.key` (absolute).
    public var tlsDirectory: String
    public var timing: Timing
    public var alerts: AlertThresholds
    /// The file this configuration was read from (absolute), for messages.
    public var path: String

    public func node(named name: String) -> NodeConfig? { nodes.first { $0.name == name } }
    public func node(withID id: NodeID) -> NodeConfig? { nodes.first { $0.id == id } }

    public init(cluster: String, nodes: [NodeConfig], tlsDirectory: String, timing: Timing = Timing(),
                alerts: AlertThresholds = AlertThresholds(), path: String) {
        self.cluster = cluster
        self.nodes = nodes
        self.tlsDirectory = tlsDirectory
        self.timing = timing
        self.alerts = alerts
        self.path = path
    }
}

public struct NodeConfig: Sendable, Equatable {
    /// Short identifier: lower-case letters, digits, `-` and `_`. Used in certificates, file
    /// names and the CLI.
    public var name: String
    /// What operators call the site, e.g. "主数据中心" (primary data centre).
    public var label: String
    /// Region, e.g. "华东" (East China).
    public var location: String
    /// Address other agents and clients use for this node (IP or DNS name).
    public var host: String
    public var agentPort: Int
    public var apiPort: Int
    /// Absent on a witness: a voting member without PostgreSQL.
    public var postgresPort: Int?
    /// Lower is preferred as primary (the seed's convention: 0 is the first choice).
    public var priority: Int
    /// Never promote this node automatically.
    public var noFailover: Bool
    /// Stream from this node instead of the primary (cascading replication).
    public var replicateFrom: String?
    /// Where this node's agent keeps its Raft state (absolute).
    public var dataDirectory: String

    public var isWitness: Bool { postgresPort == nil }
    /// The Raft identity, derived from the name so that reordering the file changes nothing.
    public var id: NodeID { NodeConfig.id(forName: name) }

    /// FNV-1a of the name; never 0 (Raft uses no sentinel, but 0 reads like "none" in logs).
    public static func id(forName name: String) -> NodeID {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in name.utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        return NodeID(hash == 0 ? 1 : hash)
    }

    public init(name: String, label: String = "", location: String = "", host: String,
                agentPort: Int = NodeConfig.defaultAgentPort, apiPort: Int = NodeConfig.defaultAPIPort,
                postgresPort: Int? = nil, priority: Int = 0, noFailover: Bool = false,
                replicateFrom: String? = nil, dataDirectory: String) {
        self.name = name
        self.label = label
        self.location = location
        self.host = host
        self.agentPort = agentPort
        self.apiPort = apiPort
        self.postgresPort = postgresPort
        self.priority = priority
        self.noFailover = noFailover
        self.replicateFrom = replicateFrom
        self.dataDirectory = dataDirectory
    }

    public static let defaultAgentPort = 7400
    /// Patroni's REST port, so existing load-balancer checks find the API where they expect it.
    public static let defaultAPIPort = 8008
}

public struct Timing: Sendable, Equatable {
    public var heartbeatMilliseconds = 100
    /// The minimum election timeout; each election waits a random time in [1×, 2×) of it.
    public var electionTimeoutMilliseconds = 1_000

    public init(heartbeatMilliseconds: Int = 100, electionTimeoutMilliseconds: Int = 1_000) {
        self.heartbeatMilliseconds = heartbeatMilliseconds
        self.electionTimeoutMilliseconds = electionTimeoutMilliseconds
    }

    /// Raft options for this timing: one tick per heartbeat interval. The leader lease lasts 70 %
    /// of the election timeout, within the core's bounds (≥ 2 heartbeats, ≤ election − 2 ticks).
    public var raftOptions: RaftOptions {
        var options = RaftOptions()
        options.heartbeatTicks = 1
        options.electionTicks = max(1, electionTimeoutMilliseconds / max(1, heartbeatMilliseconds))
        options.leaseTicks = min(max(2, options.electionTicks * 7 / 10), max(2, options.electionTicks - 2))
        return options
    }
}

/// The seed's alert thresholds (告警阈值).
public struct AlertThresholds: Sendable, Equatable {
    public var replicationLagWarningSeconds: Double = 30
    public var replicationLagCriticalSeconds: Double = 120
    public var networkLatencyWarningMilliseconds: Double = 100
    /// Consecutive failed connection checks before a member counts as unreachable.
    public var failedConnectionChecks = 3

    public init() {}
}
