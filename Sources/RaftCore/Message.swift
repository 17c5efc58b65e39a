/// A message between two Raft members. `term` is the sender's term, except in pre-vote
/// traffic, where a request carries the term the sender would campaign in.
public struct Message: Sendable, Equatable, CustomStringConvertible {
    public var from: NodeID
    public var to: NodeID
    public var term: Term
    public var kind: Kind

    public init(from: NodeID, to: NodeID, term: Term, kind: Kind) {
        self.from = from
        self.to = to
        self.term = term
        self.kind = kind
    }

    public enum Kind: Sendable, Equatable {
        case preVoteRequest(lastIndex: LogIndex, lastTerm: Term)
        case preVoteResponse(granted: Bool)
        /// `leadershipTransfer` bypasses the receivers' "recently heard from a leader" check; only a
        /// node told `timeoutNow` by the current leader sets it.
        case voteRequest(lastIndex: LogIndex, lastTerm: Term, leadershipTransfer: Bool)
        case voteResponse(granted: Bool)
        /// `round` is the leader's heartbeat round; the follower echoes it so the leader can time
        /// its lease and confirm read indexes.
        case append(prevIndex: LogIndex, prevTerm: Term, entries: [Entry], commit: LogIndex, round: UInt64)
        case appendResponse(AppendResult, round: UInt64)
        case heartbeat(commit: LogIndex, round: UInt64)
        case heartbeatResponse(round: UInt64)
        case installSnapshot(Snapshot, round: UInt64)
        /// Sent by a leader to the target of a leadership transfer: campaign now.
        case timeoutNow
    }

    public enum AppendResult: Sendable, Equatable {
        /// The follower's log matches the leader's up to `matchIndex`.
        case accepted(matchIndex: LogIndex)
        /// The follower's log does not contain `prevIndex`. The hint lets the leader skip a whole
        /// conflicting term (or the missing tail) in one round trip.
        case rejected(prevIndex: LogIndex, hint: ConflictHint)
    }

    public struct ConflictHint: Sendable, Equatable {
        /// The follower's term at the rejected index, or nil when its log is shorter.
        public var conflictTerm: Term?
        /// The first index of the follower's run of `conflictTerm` (not looking below its commit
        /// index, which matches the leader anyway), or its last index + 1.
        public var firstIndex: LogIndex

        public init(conflictTerm: Term?, firstIndex: LogIndex) {
            self.conflictTerm = conflictTerm
            self.firstIndex = firstIndex
        }
    }

    /// Whether this message depends on nothing that is not yet durable at the sender: a
    /// leader's replication traffic may go out before the leader's own entries are on disk
    /// (Raft dissertation §10.2.1) because the leader counts itself towards a commit only once
    /// its entries are durable. Everything else (votes, acknowledgements, terms the sender just
    /// adopted) is a promise and waits until the Ready's hard state and entries are persisted.
    public var maySendBeforePersist: Bool {
        switch kind {
        case .append, .heartbeat, .installSnapshot, .timeoutNow: true
        default: false
        }
    }

    public var description: String {
        let body: String
        switch kind {
        case .preVoteRequest(let li, let lt): body = "PreVote(last \(li)@\(lt))"
        case .preVoteResponse(let g): body = g ? "PreVote granted" : "PreVote rejected"
        case .voteRequest(let li, let lt, let t): body = "Vote(last \(li)@\(lt)\(t ? ", transfer" : ""))"
        case .voteResponse(let g): body = g ? "Vote granted" : "Vote rejected"
        case .append(let pi, let pt, let es, let c, let r):
            body = "Append(prev \(pi)@\(pt), \(es.count) entries, commit \(c), round \(r))"
        case .appendResponse(.accepted(let m), _): body = "AppendOK(match \(m))"
        case .appendResponse(.rejected(let pi, let h), _):
            body = "AppendReject(prev \(pi), hint \(h.firstIndex)@\(h.conflictTerm.map(String.init) ?? "-"))"
        case .heartbeat(let c, let r): body = "Heartbeat(commit \(c), round \(r))"
        case .heartbeatResponse(let r): body = "HeartbeatOK(round \(r))"
        case .installSnapshot(let s, _): body = "Snapshot(\(s.metadata.index)@\(s.metadata.term))"
        case .timeoutNow: body = "TimeoutNow"
        }
        return "\(from)->\(to) t\(term) \(body)"
    }
}
