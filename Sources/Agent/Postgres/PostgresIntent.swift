import ClusterState

/// What the Raft task wants from this node's PostgreSQL, derived from committed state and the
/// lease after every batch of Raft work. The PostgreSQL thread carries it out.
struct PostgresIntent: Sendable, Equatable {
    /// Set once the bootstrap is committed: the cluster's PostgreSQL identity.
    var systemIdentifier: UInt64?
    /// The primary of the current epoch (nil before the bootstrap).
    var primary: String?
    var epoch: UInt64 = 0
    /// This node's Raft term (fences are counted per term, see `FenceBackoff`).
    var term: UInt64 = 0
    /// The promotion of the current epoch as committed in the history: the timeline the
    /// primary started and its WAL position when it was chosen. A replica on an older timeline
    /// with WAL beyond that position holds WAL the primary never had: it has diverged.
    var promotion: Promotion?

    struct Promotion: Sendable, Equatable {
        var timeline: UInt32
        var walPosition: UInt64
    }
    /// This node leads a new cluster and should initialise PostgreSQL (initdb) to bootstrap it.
    var mayBootstrap = false
    /// Set while this node is the primary of the current epoch, leads in the term that made it
    /// so, and holds the lease: PostgreSQL may be promoted and accept writes until then (the
    /// lease's end). A deadline, not a flag, so that an intent read late — by a thread that was
    /// frozen with the process — cannot promote anything.
    var writableUntil: ContinuousClock.Instant?

    var writable: Bool { writableUntil.map { ContinuousClock.now < $0 } ?? false }

    /// Equal apart from the deadline's exact value (which moves on every heartbeat).
    func sameDecision(as other: PostgresIntent) -> Bool {
        systemIdentifier == other.systemIdentifier && primary == other.primary && epoch == other.epoch
            && promotion == other.promotion
            && mayBootstrap == other.mayBootstrap && holdStopped == other.holdStopped && stateIsCurrent == other.stateIsCurrent
            && (writableUntil == nil) == (other.writableUntil == nil)
    }
    /// Stop PostgreSQL cleanly and keep it stopped (planned switchover away from this node).
    var holdStopped = false
    /// This agent has caught up with the cluster (it knows the leader and has applied what the
    /// leader committed). Until then its own log may be stale — a restarted old primary would
    /// still read itself as primary and replay WAL the new primary never had — so PostgreSQL
    /// is left as it is.
    var stateIsCurrent = false
}

/// What this node's PostgreSQL thread last found, for the Raft task (to report to the leader)
/// and the API (health endpoints).
struct LocalPostgresStatus: Sendable, Equatable {
    var report: MemberReport
    /// Writable primary right now: promoted, and the last check passed.
    var acceptsWrites: Bool { report.role == .primary && report.healthy }
    /// The primary failed `health_check_failures` checks in a row and could not be restarted
    /// within `restart_timeout_s`: its agent should hand leadership to the best replica.
    var givenUp = false
    /// Final WAL position after a clean stop (switchover), if any.
    var stoppedAtPosition: UInt64?
    /// When this replica was last seen streaming.
    var lastStreamedAt: ContinuousClock.Instant?

    static let witness = LocalPostgresStatus(report: .witness)
    static let starting = LocalPostgresStatus(report: MemberReport(role: .stopped, healthy: false, lastError: "starting"))
}
