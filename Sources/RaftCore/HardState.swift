/// What a node must have on disk before it sends any message that depends on it.
public struct HardState: Sendable, Equatable {
    public var term: Term
    public var vote: NodeID?
    public var commit: LogIndex
    /// Set when the node's state was replaced (`storage wipe`): the leader's entry at this
    /// index and term comes after every entry the node may have acknowledged before it lost
    /// them. The node votes only for candidates whose log is at least as up to date as that
    /// entry (an empty log would vouch for any candidate, where the old log would have refused
    /// one that lacks those entries), and does not campaign before it committed it. 0: none.
    public var voteFloorIndex: LogIndex
    public var voteFloorTerm: Term

    public init(term: Term = 0, vote: NodeID? = nil, commit: LogIndex = 0, voteFloorIndex: LogIndex = 0, voteFloorTerm: Term = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
        self.voteFloorIndex = voteFloorIndex
        self.voteFloorTerm = voteFloorTerm
    }
}

public struct SnapshotMetadata: Sendable, Equatable {
    public var index: LogIndex
    public var term: Term
    public var configuration: Configuration

    public init(index: LogIndex, term: Term, configuration: Configuration) {
        self.index = index
        self.term = term
        self.configuration = configuration
    }
}

/// The application's state as of `metadata.index`, which replaces every log entry up to it.
public struct Snapshot: Sendable, Equatable {
    public var metadata: SnapshotMetadata
    public var data: [UInt8]

    public init(metadata: SnapshotMetadata, data: [UInt8]) {
        self.metadata = metadata
        self.data = data
    }
}
