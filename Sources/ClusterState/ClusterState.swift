/// The replicated cluster state: what every agent applies from the Raft log, in log order, and
/// so agrees on. Pure: no clock (times arrive inside commands), no I/O.
///
/// The safety rules live in `apply`: a promotion names the next epoch exactly (epochs strictly
/// increase, one primary per epoch), and a cluster's PostgreSQL identity is set once. A command
/// that breaks a rule is rejected deterministically on every node, so all agents stay equal.
public struct ClusterState: Sendable, Equatable {
    /// PostgreSQL's system identifier of this cluster's data (set by the bootstrap).
    public private(set) var systemIdentifier: UInt64?
    public private(set) var primary: String?
    /// Promotions so far; the bootstrap's primary has epoch 1.
    public private(set) var epoch: UInt64 = 0
    /// The Raft term of the entry that made the current primary. A primary may be writable only
    /// while it leads in that very term: a node that regains leadership later commits a new epoch
    /// first.
    public private(set) var primaryTerm: UInt64 = 0
    /// The highest WAL position recorded for the primary (the failover lag guard's reference).
    public private(set) var lastPrimaryPosition: UInt64 = 0
    public private(set) var history: [HistoryEntry] = []
    /// An operator's move (switchover or failover) waiting for its promotion: the next leader
    /// promotes this node if it can, with this reason. Only for the epoch it was made in.
    public private(set) var plannedPrimary: PlannedPrimary?

    public init() {}

    /// A state restored from a snapshot (`ClusterStateSnapshot`).
    init(systemIdentifier: UInt64?, primary: String?, epoch: UInt64, primaryTerm: UInt64, lastPrimaryPosition: UInt64,
         history: [HistoryEntry], plannedPrimary: PlannedPrimary?) {
        self.systemIdentifier = systemIdentifier
        self.primary = primary
        self.epoch = epoch
        self.primaryTerm = primaryTerm
        self.lastPrimaryPosition = lastPrimaryPosition
        self.history = history
        self.plannedPrimary = plannedPrimary
    }

    public struct PlannedPrimary: Sendable, Equatable {
        public var node: String
        public var reason: String
        /// The epoch the plan was made in; a promotion (of anyone) ends it.
        public var epoch: UInt64
        /// Promote even if the failover policy says the node is not a safe candidate.
        public var force: Bool

        public init(node: String, reason: String, epoch: UInt64, force: Bool) {
            self.node = node
            self.reason = reason
            self.epoch = epoch
            self.force = force
        }
    }

    public struct HistoryEntry: Sendable, Equatable {
        public var epoch: UInt64
        public var primary: String
        public var timeline: UInt32
        public var walPosition: UInt64
        public var reason: String
        /// Milliseconds since 1970 (wall clock of the proposing leader; for people only).
        public var unixMilliseconds: UInt64
    }

    public enum Command: Sendable, Equatable {
        /// The first primary of a new cluster, after its initdb; `timeline` is the one it runs on
        /// (2: the agent promotes it out of standby mode, like every primary).
        case bootstrap(systemIdentifier: UInt64, primary: String, unixMilliseconds: UInt64, timeline: UInt32 = 1)
        /// `node` becomes primary in `epoch`, which must be the current epoch + 1.
        case promote(node: String, epoch: UInt64, timeline: UInt32, walPosition: UInt64, reason: String, unixMilliseconds: UInt64)
        /// The primary's WAL position, recorded now and then for the lag guard.
        case recordPrimaryPosition(epoch: UInt64, walPosition: UInt64)
        /// An operator asked to move the primary to `node` (nil: cancel the plan) in `epoch`.
        case planPrimary(node: String?, reason: String, epoch: UInt64, force: Bool)
    }

    public enum Rejection: Error, Sendable, Equatable, CustomStringConvertible {
        case alreadyBootstrapped
        case notBootstrapped
        case wrongEpoch(proposed: UInt64, expected: UInt64)
        case staleEpoch(UInt64, current: UInt64)

        public var description: String {
            switch self {
            case .alreadyBootstrapped: "the cluster is already bootstrapped"
            case .notBootstrapped: "the cluster has no primary yet (not bootstrapped)"
            case .wrongEpoch(let proposed, let expected): "epoch \(proposed) proposed, but the next epoch is \(expected)"
            case .staleEpoch(let epoch, let current): "a report for epoch \(epoch), but the current epoch is \(current)"
            }
        }
    }

    /// Applies `command`; returns why it was refused (state unchanged), or nil.
    @discardableResult
    public mutating func apply(_ command: Command, term: UInt64 = 0) -> Rejection? {
        switch command {
        case .bootstrap(let identifier, let node, let time, let timeline):
            guard systemIdentifier == nil else { return (.alreadyBootstrapped) }
            systemIdentifier = identifier
            primary = node
            epoch = 1
            primaryTerm = term
            history.append(HistoryEntry(epoch: 1, primary: node, timeline: timeline, walPosition: 0, reason: "bootstrap", unixMilliseconds: time))
        case .promote(let node, let proposed, let timeline, let position, let reason, let time):
            guard systemIdentifier != nil else { return (.notBootstrapped) }
            guard proposed == epoch + 1 else { return (.wrongEpoch(proposed: proposed, expected: epoch + 1)) }
            primary = node
            epoch = proposed
            primaryTerm = term
            plannedPrimary = nil
            lastPrimaryPosition = max(lastPrimaryPosition, position)
            history.append(HistoryEntry(epoch: proposed, primary: node, timeline: timeline, walPosition: position, reason: reason, unixMilliseconds: time))
        case .recordPrimaryPosition(let reportEpoch, let position):
            guard reportEpoch == epoch else { return (.staleEpoch(reportEpoch, current: epoch)) }
            lastPrimaryPosition = max(lastPrimaryPosition, position)
        case .planPrimary(let node, let reason, let planEpoch, let force):
            guard systemIdentifier != nil else { return (.notBootstrapped) }
            guard planEpoch == epoch else { return (.staleEpoch(planEpoch, current: epoch)) }
            plannedPrimary = node.map { PlannedPrimary(node: $0, reason: reason, epoch: planEpoch, force: force) }
        }
        return nil
    }
}
