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
    /// Counts promotions of a PostgreSQL primary. No node manages PostgreSQL yet, so it stays 0.
    public var epoch: UInt64
    public var primary: String?
    public var commitIndex: UInt64
    public var members: [MemberView]

    enum CodingKeys: String, CodingKey {
        case cluster, leader, term, epoch, primary, members, linearizable
        case answeredBy = "answered_by"
        case commitIndex = "commit_index"
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

    enum CodingKeys: String, CodingKey {
        case name, label, location, host, priority, witness, role, state
        case apiPort = "api_port"
        case lastContactMilliseconds = "last_contact_ms"
        case rttMilliseconds = "rtt_ms"
        case matchIndex = "match_index"
    }

    public init(name: String, label: String, location: String, host: String, apiPort: Int, priority: Int,
                witness: Bool, role: String, state: String, lastContactMilliseconds: Double?,
                rttMilliseconds: Double?, matchIndex: UInt64?) {
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
    public var electionsStarted: UInt64
    public var leaderChanges: UInt64
    public var uptimeSeconds: Double

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
        metric("raft_elections_started_total", "counter", "Elections this node started (as candidate).", [(node, "\(electionsStarted)")])
        metric("raft_leader_changes_total", "counter", "Times this node saw the leader change.", [(node, "\(leaderChanges)")])
        metric("epoch", "gauge", "Primary epoch (promotions so far).", [(node, "\(view.epoch)")])
        let peers = view.members.filter { $0.name != view.answeredBy }
        metric("peer_rtt_seconds", "gauge", "Round-trip time to each peer over the agent link.",
               peers.compactMap { peer in peer.rttMilliseconds.map { ("\(node),peer=\"\(peer.name)\"", String(format: "%.6f", $0 / 1_000)) } })
        metric("peer_reachable", "gauge", "1 when the peer was heard from within the election timeout.",
               peers.map { ("\(node),peer=\"\($0.name)\"", $0.state == "running" ? "1" : "0") })
        metric("uptime_seconds", "gauge", "Seconds since the agent started.", [(node, "\(uptimeSeconds)")])
        return lines.joined(separator: "\n") + "\n"
    }
}
