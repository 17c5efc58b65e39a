import RaftCore
#if canImport(Glibc)
import Glibc
#endif

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
    public var postgres: PostgresSettings
    public var failover = FailoverSettings()
    public var raftLog = RaftLogSettings()
    /// `api.require_client_certificate`: every API endpoint but the load-balancer checks wants
    /// a client certificate from the cluster CA (a node's or an operator's).
    public var requireClientCertificate = false
    /// The file this configuration was read from (absolute), for messages.
    public var path: String

    public func node(named name: String) -> NodeConfig? { nodes.first { $0.name == name } }
    public func node(withID id: NodeID) -> NodeConfig? { nodes.first { $0.id == id } }

    public init(cluster: String, nodes: [NodeConfig], tlsDirectory: String, timing: Timing = Timing(),
                alerts: AlertThresholds = AlertThresholds(), postgres: PostgresSettings = PostgresSettings(), path: String) {
        self.cluster = cluster
        self.nodes = nodes
        self.tlsDirectory = tlsDirectory
        self.timing = timing
        self.alerts = alerts
        self.postgres = postgres
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
    /// A plain-HTTP port that serves only the load-balancer health checks (`api.health_port`,
    /// or the node's own `health_port`); nil: none (the default).
    public var healthPort: Int?
    /// Absent on a witness: a voting member without PostgreSQL.
    public var postgresPort: Int?
    /// Lower is preferred as primary (the seed's convention: 0 is the first choice).
    public var priority: Int
    /// Never promote this node automatically.
    public var noFailover: Bool
    /// Stream from this node instead of the primary (cascading replication).
    public var replicateFrom: String?
    /// Which source addresses may present this node's certificate on a peer connection.
    public var peerAddressCheck: PeerAddressCheck = .configuredHost
    /// Where this node's agent keeps its Raft state (absolute).
    public var dataDirectory: String

    public var isWitness: Bool { postgresPort == nil }
    /// PostgreSQL's data directory on this node (managed by the agent).
    public var postgresDataDirectory: String { dataDirectory + "/postgres" }

    /// PostgreSQL's Unix socket for a node with this data directory (it lives in
    /// `<data_dir>/run`); socket paths are limited to `maximumSocketPathBytes`.
    public static func postgresSocketPath(dataDirectory: String, port: Int) -> String { dataDirectory + "/run/.s.PGSQL.\(port)" }
    public static let maximumSocketPathBytes = 107
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

    /// `tags.peer_address_check`: a node's certificate is accepted on a peer connection only from
    /// the node's own address, so a stolen key does not work from anywhere else.
    public enum PeerAddressCheck: Sendable, Equatable {
        /// The addresses `host` resolves to (the default).
        case configuredHost
        /// These addresses only (behind NAT, say).
        case addresses([String])
        /// Any address (`false`): the certificate alone identifies the node.
        case off
    }

    /// An IPv4 or IPv6 address literal (not a name).
    public static func isIPAddress(_ text: String) -> Bool {
        var v4 = in_addr()
        var v6 = in6_addr()
        return inet_pton(AF_INET, text, &v4) == 1 || inet_pton(AF_INET6, text, &v6) == 1
    }

    public static let defaultAgentPort = 7400
    /// The lab's `health_port` (and the one the docs suggest): Patroni's REST port plus one.
    public static let defaultHealthPort = 8009
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

    /// How long the fence keeper keeps PostgreSQL frozen after its lease lapsed before killing
    /// it: `electionTicks − leaseTicks + 3` ticks. No other node can accept writes before a
    /// follower that acknowledged the leader's last round may vote again (the election timeout
    /// after that round, the lease being the first part of it) and a new leader has promoted a
    /// replica (a few heartbeats more). Until then a frozen server costs clients nothing, and a
    /// blip shorter than the election timeout is ridden through; after it, clients held by the
    /// frozen server should be let go to find the new primary.
    public var freezeLimitMilliseconds: Int {
        let options = raftOptions
        return (options.electionTicks - options.leaseTicks + 3) * heartbeatMilliseconds
    }
}

/// How long the Raft log grows before it is compacted (`raft:` in the config).
public struct RaftLogSettings: Sendable, Equatable {
    /// Snapshot the cluster state every so many applied entries (`raft.snapshot_entries`).
    public var snapshotEntries = 10_000
    /// Entries kept behind a snapshot, so a follower that lags by fewer catches up from entries
    /// rather than a snapshot (`raft.keep_entries`).
    public var keepEntries = 5_000

    public init(snapshotEntries: Int = 10_000, keepEntries: Int = 5_000) {
        self.snapshotEntries = snapshotEntries
        self.keepEntries = keepEntries
    }
}

/// How the leader chooses a new primary.
public struct FailoverSettings: Sendable, Equatable {
    /// How long the leader waits, before promoting, for a member that may hold more WAL than the
    /// best candidate but cannot serve yet (PostgreSQL stopped or in crash recovery) or has not
    /// reported. 0: never wait.
    public var reportWaitMilliseconds = 5_000

    public init(reportWaitMilliseconds: Int = 5_000) {
        self.reportWaitMilliseconds = reportWaitMilliseconds
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

/// The `postgresql:` section: how every agent runs and watches its PostgreSQL server.
/// See docs/configuration.md.
public struct PostgresSettings: Sendable, Equatable {
    public var binDirectory = "/usr/lib/postgresql/15/bin"
    /// The operating-system account PostgreSQL runs as when the agent runs as root.
    public var osUser = "postgres"
    /// The database superuser the agent connects as (local socket, and pg_rewind).
    public var superuser = "postgres"
    /// The role replicas stream as.
    public var replicationUser = "replicator"
    /// A libpq password file (`host:port:database:user:password`) for the superuser and
    /// replication passwords (or PGPASSWORD in the agent's environment).
    public var passfile: String?
    /// Without passwords the agent refuses to start, unless this says the cluster's hosts may be
    /// trusted for the superuser and the replication user (labs and tests only; said loudly).
    public var insecureTrust = false
    /// Database for health checks.
    public var database = "postgres"
    /// Failover guard: a replica further behind the last recorded primary position is not promoted.
    public var maximumLagOnFailoverBytes: UInt64 = 1 << 20
    /// Failed health checks in a row before the primary's agent tries a restart (the seed: 3).
    public var healthCheckFailures = 3
    /// How long a failing primary may take to restart before its agent hands leadership over.
    public var restartTimeoutSeconds = 10.0
    /// When pg_rewind cannot bring an old primary back, clone it afresh from the primary (the
    /// old data directory is moved aside, never deleted). Off: the agent stops and says what to do.
    public var allowReclone = false
    /// Extra pg_hba.conf lines (after the agent's own: local trust, and the cluster's hosts for the
    /// superuser and replication), e.g. for application servers.
    public var hbaLines: [String] = []
    /// postgresql.conf settings for every node (the seed's defaults; see `defaultParameters`).
    public var parameters: [String: String] = PostgresSettings.defaultParameters

    public init() {}

    /// The seed's postgresql.conf for the primary (replication and performance settings).
    public static let defaultParameters: [String: String] = [
        "wal_level": "logical",
        "max_wal_senders": "10",
        "max_replication_slots": "10",
        "max_logical_replication_workers": "4",
        "max_worker_processes": "8",
        "shared_buffers": "256MB",
        "effective_cache_size": "1GB",
        "maintenance_work_mem": "64MB",
        "checkpoint_completion_target": "0.9",
        "wal_buffers": "16MB",
        "default_statistics_target": "100",
        "wal_log_hints": "on",
        // A slot of a node that is down keeps WAL on the primary; past this, the slot is given
        // up (that replica then needs a fresh clone) rather than filling the primary's disk.
        "max_slot_wal_keep_size": "8GB",
    ]

    /// Settings the agent owns: set in the config, they would fight the agent.
    public static let reservedParameters: Set<String> = [
        "port", "listen_addresses", "unix_socket_directories", "primary_conninfo", "primary_slot_name",
        "hba_file", "data_directory", "config_file", "restore_command", "recovery_target_timeline",
        "cluster_name", "hot_standby", "wal_retrieve_retry_interval",
    ]
}
