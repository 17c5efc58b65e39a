import RaftCore

/// An operator's request to move the primary (`POST /switchover`, `POST /failover`).
public struct PrimaryMoveRequest: Sendable, Equatable {
    public enum Kind: String, Sendable, Equatable {
        /// Planned: the primary stops cleanly, the target receives all of its WAL, then takes over.
        /// No acknowledged write is lost.
        case switchover
        /// Now: leadership (and so the primary) goes to the target without waiting for it to
        /// catch up; refused when the target is not a safe candidate, unless forced.
        case failover
        /// After a quorum loss only: this node alone becomes the cluster (`recover-quorum`). Its
        /// own request, never a failover that found no leader: that once turned a forced
        /// failover into the destruction of a healthy majority's state.
        case recoverQuorum
    }

    public var kind: Kind
    /// Nil (switchover only): the best other candidate.
    public var target: String?
    public var reason: String
    public var force: Bool
    /// The identity in the caller's client certificate (for the log and the history).
    public var requestedBy: String

    public init(kind: Kind, target: String?, reason: String, force: Bool = false, requestedBy: String) {
        self.kind = kind
        self.target = target
        self.reason = reason
        self.force = force
        self.requestedBy = requestedBy
    }
}

/// How a move ended, as far as the leader that started it can tell.
public enum PrimaryMoveResult: Sendable, Equatable {
    /// Leadership went to `leader`, which promotes itself once its epoch is committed.
    case handedOver(leader: String, fromEpoch: UInt64)
    /// This node itself was promoted in `epoch`.
    case promoted(epoch: UInt64)
    case notLeader(leader: String?)
    case refused(String)
    case timedOut(String)
}

/// A move in progress on the leader, one phase at a time.
struct PrimaryMove {
    enum Phase: Equatable {
        /// Committing the plan (`planPrimary`) so the next leader knows whom to promote.
        case planning(LogIndex)
        /// Switchover: PostgreSQL here stops cleanly (fast shutdown: the WAL goes to the standbys).
        case stopping
        /// Switchover: waiting until the target has received everything up to the final position.
        case catchingUp(UInt64)
        /// Handing leadership to the target (or, when it is this node, awaiting the promotion).
        case transferring
    }

    var request: PrimaryMoveRequest
    var target: String
    var startEpoch: UInt64
    var phase: Phase
    var deadline: Int64
    var lastTransferTick: Int64 = -1_000
    /// This node's PostgreSQL was stopped for the move (and stays stopped until it completes).
    var stoppedHere = false
    let respond: @Sendable (PrimaryMoveResult) -> Void

    /// PostgreSQL here must stay stopped (cleanly) while the move completes.
    var holdsPostgresStopped: Bool {
        guard request.kind == .switchover else { return false }
        switch phase {
        case .planning: return false
        case .stopping, .catchingUp: return true
        case .transferring: return stoppedHere
        }
    }
}
