public enum Role: String, Sendable, Equatable {
    case follower, preCandidate = "pre-candidate", candidate, leader
}

/// Volatile facts about a node that the application may want to log or show.
public struct SoftState: Sendable, Equatable {
    public var role: Role
    public var leader: NodeID?
    public var term: Term

    public init(role: Role, leader: NodeID?, term: Term) {
        self.role = role
        self.leader = leader
        self.term = term
    }
}

/// The answer to a `readIndex` request: once this node has applied `index`, a read of its state
/// machine reflects every write committed before the request.
public struct ReadState: Sendable, Equatable {
    public var requestID: UInt64
    public var index: LogIndex

    public init(requestID: UInt64, index: LogIndex) {
        self.requestID = requestID
        self.index = index
    }
}

/// Everything the application must do for a node, in this order:
///
/// 1. send `messages` (they promise nothing that is not durable yet, so they may go first or
///    concurrently with step 2; a leader's replication traffic lands here only once the term it
///    carries is durable);
/// 2. persist `snapshot`, then `entries` (replacing any stored entries from the first one's
///    index on), then `hardState` — and sync when `mustSync` says so;
/// 3. send `messagesAfterPersist` (votes and acknowledgements, which promise what step 2 wrote);
/// 4. restore `snapshot` into the state machine, then apply `committedEntries` in order;
/// 5. call `advance(ready)`.
///
/// Steps and ticks may come between `ready()` and `advance(_:)` (an agent that writes to disk
/// asynchronously will do that); only `ready()` must not be called again before `advance`.
public struct Ready: Sendable, Equatable {
    public var softState: SoftState?
    public var hardState: HardState?
    public var snapshot: Snapshot?
    public var entries: [Entry]
    public var messages: [Message]
    public var messagesAfterPersist: [Message]
    public var committedEntries: [Entry]
    public var readStates: [ReadState]

    /// Whether step 2 has anything to write.
    public var needsPersist: Bool { hardState != nil || snapshot != nil || !entries.isEmpty }
    /// Whether step 2 must reach the disk before step 3: entries, a snapshot, or a new term, vote
    /// or vote floor. A hard state that only moves the commit index may be written without a
    /// sync: a commit index lost in a crash is learned again from the leader, and nothing this
    /// node sent promised it.
    public var mustSync: Bool

    public init(softState: SoftState? = nil, hardState: HardState? = nil, snapshot: Snapshot? = nil,
                entries: [Entry] = [], messages: [Message] = [], messagesAfterPersist: [Message] = [],
                committedEntries: [Entry] = [], readStates: [ReadState] = [], mustSync: Bool? = nil) {
        self.mustSync = mustSync ?? (hardState != nil || snapshot != nil || !entries.isEmpty)
        self.softState = softState
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
        self.messages = messages
        self.messagesAfterPersist = messagesAfterPersist
        self.committedEntries = committedEntries
        self.readStates = readStates
    }
}

/// What a node's storage hands back when it starts: the last persisted hard state, snapshot and
/// entries after the snapshot.
public struct DurableState: Sendable, Equatable {
    public var hardState: HardState
    public var snapshot: Snapshot
    public var entries: [Entry]

    public init(hardState: HardState, snapshot: Snapshot, entries: [Entry]) {
        self.hardState = hardState
        self.snapshot = snapshot
        self.entries = entries
    }

    /// The first start of a founding member of a new cluster.
    public static func bootstrap(_ configuration: Configuration) -> DurableState {
        DurableState(
            hardState: HardState(),
            snapshot: Snapshot(metadata: SnapshotMetadata(index: 0, term: 0, configuration: configuration), data: []),
            entries: []
        )
    }

    /// The first start of a node that joins an existing cluster: it knows no members and waits for
    /// the leader to replicate the log (or a snapshot) that adds it.
    public static let joining = bootstrap(.empty)
}

public enum ProposalError: Error, Sendable, Equatable, CustomStringConvertible {
    case notLeader(leader: NodeID?)
    case leadershipTransferInProgress
    /// The leader has not yet committed an entry of its own term (the single-server membership
    /// errata fix; also needed before a read index means anything).
    case leaderNotReady
    case membershipChangePending
    case invalidMembershipChange(String)
    case invalidTransferTarget(String)

    public var description: String {
        switch self {
        case .notLeader(let leader): "not the leader" + (leader.map { " (the leader is \($0))" } ?? " (no leader known)")
        case .leadershipTransferInProgress: "a leadership transfer is in progress"
        case .leaderNotReady: "the leader has not committed an entry of its term yet"
        case .membershipChangePending: "another membership change is not committed yet"
        case .invalidMembershipChange(let why): "invalid membership change: \(why)"
        case .invalidTransferTarget(let why): "cannot transfer leadership: \(why)"
        }
    }
}

public enum RestoreError: Error, Sendable, Equatable, CustomStringConvertible {
    case invalidOptions([String])
    case inconsistentState(String)

    public var description: String {
        switch self {
        case .invalidOptions(let problems): problems.joined(separator: "; ")
        case .inconsistentState(let why): "durable Raft state is inconsistent: \(why)"
        }
    }
}
