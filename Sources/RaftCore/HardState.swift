/// What a node must have on disk before it sends any message that depends on it.
public struct HardState: Sendable, Equatable {
    public var term: Term
    public var vote: NodeID?
    public var commit: LogIndex

    public init(term: Term = 0, vote: NodeID? = nil, commit: LogIndex = 0) {
        self.term = term
        self.vote = vote
        self.commit = commit
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
