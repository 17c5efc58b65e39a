import Foundation

/// The leader view: what `GET /cluster` returns and `pgquorum status` prints. JSON keys are
/// snake_case (documented in docs/api.md).
public struct ClusterView: Codable, Sendable, Equatable {
    public var cluster: String
    /// The node whose agent produced this view (the leader, for a linearizable answer).
    public var answeredBy: String
    /// True when the leader confirmed with a quorum that it still leads (ReadIndex) before
    /// answering; false for `?stale=true` answers from one node's local state.
    public var linearizable: Bool
    public var leader: String?
    public var term: UInt64
    /// Counts promotions of a PostgreSQL primary (the bootstrap is epoch 1).
    public var epoch: UInt64
    public var primary: String?
    public var commitIndex: UInt64
    public var members: [MemberView]
    /// The leader's answer while no primary of its term is in place: what it waits for, or why
    /// no node may be promoted. Nil otherwise (and from followers).
    public var primaryPending: String?
    /// True when the config lets the nodes' hosts into PostgreSQL without a password
    /// (`postgresql.insecure_trust`); nil otherwise.
    public var insecureTrust: Bool?

    enum CodingKeys: String, CodingKey {
        case cluster, leader, term, epoch, primary, members, linearizable
        case answeredBy = "answered_by"
        case commitIndex = "commit_index"
        case primaryPending = "primary_pending"
        case insecureTrust = "insecure_trust"
    }

    public init(cluster: String, answeredBy: String, linearizable: Bool, leader: String?, term: UInt64,
                epoch: UInt64, primary: String?, commitIndex: UInt64, members: [MemberView]) {
        self.cluster = cluster
        self.answeredBy = answeredBy
        self.linearizable = linearizable
        self.leader = leader
        self.term = term
        self.epoch = epoch
        self.primary = primary
        self.commitIndex = commitIndex
        self.members = members
    }
}

public struct MemberView: Codable, Sendable, Equatable {
    public var name: String
    public var label: String
    public var location: String
    public var host: String
    public var apiPort: Int
    public var priority: Int
    /// A voting member without PostgreSQL.
    public var witness: Bool
    /// Raft role as the answering node sees it: leader, follower, learner or candidate.
    public var role: String
    /// running: heard from within the election timeout (or the answering node itself);
    /// unreachable: not heard from for longer.
    public var state: String
    /// Milliseconds since the answering node last heard from this member (nil for itself, or
    /// never heard).
    public var lastContactMilliseconds: Double?
    /// Round-trip time from the answering node over the peer link.
    public var rttMilliseconds: Double?
    /// Highest log index known to be replicated on this member (leader's view only).
    public var matchIndex: UInt64?
    /// The member's PostgreSQL as last reported (the leader knows every member's; a follower
    /// only its own). Nil for witnesses and members not heard from.
    public var postgres: PostgresView?

    enum CodingKeys: String, CodingKey {
        case name, label, location, host, priority, witness, role, state, postgres
        case apiPort = "api_port"
        case lastContactMilliseconds = "last_contact_ms"
        case rttMilliseconds = "rtt_ms"
        case matchIndex = "match_index"
    }

    public init(name: String, label: String, location: String, host: String, apiPort: Int, priority: Int,
                witness: Bool, role: String, state: String, lastContactMilliseconds: Double?,
                rttMilliseconds: Double?, matchIndex: UInt64?, postgres: PostgresView? = nil) {
        self.name = name
        self.label = label
        self.location = location
        self.host = host
        self.apiPort = apiPort
        self.priority = priority
        self.witness = witness
        self.role = role
        self.state = state
        self.lastContactMilliseconds = lastContactMilliseconds
        self.rttMilliseconds = rttMilliseconds
        self.matchIndex = matchIndex
        self.postgres = postgres
    }
}

/// One member's PostgreSQL in the leader view (`patronictl list` columns: role, state, TL,
/// receive/replay LSN, lag).
public struct PostgresView: Codable, Sendable, Equatable {
    /// primary, replica or stopped.
    public var role: String
    /// running (answers its health check), streaming (a replica receiving WAL), or the problem.
    public var state: String
    public var timeline: UInt32
    public var receivedLSN: String
    public var replayedLSN: String
    /// Bytes behind the primary's position (replicas, in the leader's view).
    public var lagBytes: UInt64?
    /// Milliseconds since the last replayed transaction committed on the primary.
    public var lagMilliseconds: UInt64?
    public var lastError: String?

    enum CodingKeys: String, CodingKey {
        case role, state, timeline
        case receivedLSN = "received_lsn"
        case replayedLSN = "replayed_lsn"
        case lagBytes = "lag_bytes"
        case lagMilliseconds = "lag_ms"
        case lastError = "last_error"
    }

    public init(role: String, state: String, timeline: UInt32, receivedLSN: String, replayedLSN: String,
                lagBytes: UInt64?, lagMilliseconds: UInt64?, lastError: String?) {
        self.role = role
        self.state = state
        self.timeline = timeline
        self.receivedLSN = receivedLSN
        self.replayedLSN = replayedLSN
        self.lagBytes = lagBytes
        self.lagMilliseconds = lagMilliseconds
        self.lastError = lastError
    }
}

/// One promotion in the cluster history (`GET /history`, `pgquorum history`).
public struct HistoryView: Codable, Sendable, Equatable {
    public var epoch: UInt64
    public var primary: String
    public var timeline: UInt32
    public var lsn: String
    public var reason: String
    /// ISO 8601, UTC (the proposing leader's wall clock; for people only).
    public var time: String

    public init(epoch: UInt64, primary: String, timeline: UInt32, lsn: String, reason: String, time: String) {
        self.epoch = epoch
        self.primary = primary
        self.timeline = timeline
        self.lsn = lsn
        self.reason = reason
        self.time = time
    }
}

/// What one agent knows right now, published by the Raft task after every batch of work and read
/// by the API without waiting for that task.
public struct AgentSnapshot: Sendable, Equatable {
    public var view: ClusterView
    public var role: String
    /// When this node's leader lease runs out, on the monotonic clock (nil: no lease).
    public var leaseExpiry: ContinuousClock.Instant?
    public var appliedIndex: UInt64
    public var lastIndex: UInt64
    /// The last index the newest snapshot covers: the log holds only the entries after it.
    public var snapshotIndex: UInt64 = 0
    public var electionsStarted: UInt64
    public var leaderChanges: UInt64
    public var uptimeSeconds: Double
    /// This node is the primary of the current epoch, made in the current term (the lease is
    /// checked separately, at request time).
    public var primaryOfCurrentTerm = false
    /// This node's PostgreSQL as its agent last found it (nil on a witness).
    public var localPostgres: LocalPostgresView?
    public var history: [HistoryView] = []
    /// The Raft task's worst tick delay of the last 10–20 s, and ticks it caught up late.
    public var tickLatenessSeconds: Double = 0
    public var ticksLate: UInt64 = 0

    /// Whether the lease still holds now: checked against the clock, not against the last tick,
    /// so a snapshot published just before the lease ran out does not outlive it.
    public var hasLease: Bool { leaseExpiry.map { ContinuousClock.now < $0 } ?? false }

    public init(view: ClusterView, role: String, leaseExpiry: ContinuousClock.Instant?, appliedIndex: UInt64, lastIndex: UInt64,
                electionsStarted: UInt64, leaderChanges: UInt64, uptimeSeconds: Double) {
        self.view = view
        self.role = role
        self.leaseExpiry = leaseExpiry
        self.appliedIndex = appliedIndex
        self.lastIndex = lastIndex
        self.electionsStarted = electionsStarted
        self.leaderChanges = leaderChanges
        self.uptimeSeconds = uptimeSeconds
    }

    /// Prometheus text exposition format (version 0.0.4).
    public var prometheusText: String {
        let node = "node=\"\(view.answeredBy)\""
        var lines: [String] = []
        func metric(_ name: String, _ type: String, _ help: String, _ samples: [(String, String)]) {
            lines.append("# HELP pgquorum_\(name) \(help)")
            lines.append("# TYPE pgquorum_\(name) \(type)")
            for (labels, value) in samples { lines.append("pgquorum_\(name){\(labels)} \(value)") }
        }
        metric("raft_term", "gauge", "Current Raft term.", [(node, "\(view.term)")])
        metric("raft_role", "gauge", "1 for this node's current Raft role.",
               ["follower", "pre-candidate", "candidate", "leader"].map { ("\(node),role=\"\($0)\"", $0 == role ? "1" : "0") })
        metric("raft_is_leader", "gauge", "1 while this node is the Raft leader.", [(node, role == "leader" ? "1" : "0")])
        metric("raft_leader_lease", "gauge", "1 while this node holds the leader lease.", [(node, hasLease ? "1" : "0")])
        metric("raft_leader_known", "gauge", "1 when this node knows a leader.", [(node, view.leader == nil ? "0" : "1")])
        metric("raft_commit_index", "gauge", "Highest log index known to be committed.", [(node, "\(view.commitIndex)")])
        metric("raft_applied_index", "gauge", "Highest log index applied.", [(node, "\(appliedIndex)")])
        metric("raft_last_index", "gauge", "Last index in this node's log.", [(node, "\(lastIndex)")])
        metric("raft_snapshot_index", "gauge", "Last index covered by the newest snapshot (the log keeps only the entries after it).",
               [(node, "\(snapshotIndex)")])
        metric("raft_elections_started_total", "counter", "Elections this node started (as candidate).", [(node, "\(electionsStarted)")])
        metric("raft_leader_changes_total", "counter", "Times this node saw the leader change.", [(node, "\(leaderChanges)")])
        metric("raft_tick_lateness_seconds", "gauge", "Worst delay of the Raft task's ticks in the last 10-20 s (a late tick renews the lease late).",
               [(node, String(format: "%.6f", tickLatenessSeconds))])
        metric("raft_ticks_late_total", "counter", "Ticks the Raft task processed more than one interval late.", [(node, "\(ticksLate)")])
        metric("epoch", "gauge", "Primary epoch (promotions so far).", [(node, "\(view.epoch)")])
        if let local = localPostgres {
            metric("postgres_running", "gauge", "1 while this node's PostgreSQL answers its health check.", [(node, local.healthy ? "1" : "0")])
            metric("postgres_primary", "gauge", "1 while this node's PostgreSQL is a writable primary holding the lease.",
                   [(node, primaryOfCurrentTerm && hasLease && local.role == "primary" && local.healthy ? "1" : "0")])
            metric("postgres_timeline", "gauge", "Timeline of this node's PostgreSQL.", [(node, "\(local.timeline)")])
            metric("postgres_replication_lag_bytes", "gauge", "Replica: bytes between the primary's last reported position and replay.",
                   local.role == "replica" ? [(node, "\(local.lagBytes)")] : [])
            metric("postgres_replication_lag_seconds", "gauge", "Replica: seconds since the last replayed transaction committed on the primary.",
                   local.role == "replica" ? [(node, String(format: "%.3f", Double(local.lagMilliseconds) / 1_000))] : [])
        }
        let peers = view.members.filter { $0.name != view.answeredBy }
        metric("peer_rtt_seconds", "gauge", "Round-trip time to each peer over the agent link.",
               peers.compactMap { peer in peer.rttMilliseconds.map { ("\(node),peer=\"\(peer.name)\"", String(format: "%.6f", $0 / 1_000)) } })
        metric("peer_reachable", "gauge", "1 when the peer was heard from within the election timeout.",
               peers.map { ("\(node),peer=\"\($0.name)\"", $0.state == "running" ? "1" : "0") })
        metric("uptime_seconds", "gauge", "Seconds since the agent started.", [(node, "\(uptimeSeconds)")])
        return lines.joined(separator: "\n") + "\n"
    }
}

/// This node's own PostgreSQL, for its health endpoints.
public struct LocalPostgresView: Sendable, Equatable {
    public var role: String
    public var healthy: Bool
    public var streaming: Bool
    /// Streaming now, or a moment ago (its upstream just died and a new primary is being chosen):
    /// the read pool should not empty during a failover.
    public var streamedRecently: Bool
    public var timeline: UInt32
    /// Replica: bytes between the primary's last reported WAL end and this node's replay.
    public var lagBytes: UInt64
    public var lagMilliseconds: UInt64
}
