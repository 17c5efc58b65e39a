/// One record of the replicated log.
public struct Entry: Sendable, Equatable {
    public var term: Term
    public var index: LogIndex
    public var payload: EntryPayload

    public init(term: Term, index: LogIndex, payload: EntryPayload) {
        self.term = term
        self.index = index
        self.payload = payload
    }
}

public enum EntryPayload: Sendable, Equatable {
    /// Appended by every new leader so that it can commit (and so learn the commit index of) its term.
    case noop
    /// Opaque bytes of the application's state machine.
    case application([UInt8])
    /// A single-server membership change and the configuration it results in (recorded whole, so
    /// a node finds its membership from the last such entry alone). It takes effect as soon as it
    /// is appended to a log, committed or not.
    case membership(MembershipChange, result: Configuration)
}

public enum MembershipChange: Sendable, Equatable, CustomStringConvertible {
    case addVoter(NodeID)
    case addLearner(NodeID)
    /// Removes a voter or a learner.
    case remove(NodeID)

    public var node: NodeID {
        switch self {
        case .addVoter(let id), .addLearner(let id), .remove(let id): id
        }
    }

    public var description: String {
        switch self {
        case .addVoter(let id): "add voter \(id)"
        case .addLearner(let id): "add learner \(id)"
        case .remove(let id): "remove \(id)"
        }
    }
}
