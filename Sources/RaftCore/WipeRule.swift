/// When a node's lost or damaged Raft state may be replaced by a fresh one (`pgquorum storage
/// wipe`), and what the fresh one holds. Pure: the tool and the simulator ask the same rule
/// (docs/storage.md, docs/raft.md "A follower that lost its state").
public enum WipeRule {
    /// What one other voter holds: its match index in the leader's view, and its own commit index
    /// (a node wiped a moment ago may still carry its old match in the leader's view).
    public struct Holding: Sendable, Equatable {
        public var match: LogIndex
        public var commit: LogIndex

        public init(match: LogIndex, commit: LogIndex) {
            self.match = match
            self.commit = commit
        }
    }

    public struct Verdict<Member: Hashable & Comparable & Sendable>: Sendable, Equatable {
        /// Every entry up to here must survive without the wiped node.
        public var needed: LogIndex
        /// The other voters that hold it, in order.
        public var holders: [Member]
        /// The holders form a quorum.
        public var safe: Bool

        public init(needed: LogIndex, holders: [Member], safe: Bool) {
            self.needed = needed
            self.holders = holders
            self.safe = safe
        }
    }

    /// Nothing may depend on the wiped node's copy: every entry committed, and every entry it
    /// acknowledged (the leader counts those towards commits until the fresh node's first answer
    /// shows they are gone), must be in the log and known committed on a quorum of the voters
    /// other than it.
    public static func check<Member: Hashable & Comparable & Sendable>(commitIndex: LogIndex, acknowledged: LogIndex,
                                                                       others: [Member: Holding], quorum: Int) -> Verdict<Member> {
        let needed = max(commitIndex, acknowledged)
        let holders = others.filter { $0.value.match >= needed && $0.value.commit >= needed }.map(\.key).sorted()
        return Verdict(needed: needed, holders: holders, safe: holders.count >= quorum)
    }

    /// The fresh state's hard state: the highest term any voter reached, the vote already cast
    /// (for itself, so it grants none in that term), and a vote floor at `needed` — no vote for a
    /// candidate that lacks what this node may have acknowledged, no campaign before it has
    /// that again. `floorTerm` is the term of the leader's entry at `needed`.
    public static func freshHardState(node: NodeID, highestTerm: Term, needed: LogIndex, floorTerm: Term) -> HardState {
        HardState(term: highestTerm, vote: node, commit: 0, voteFloorIndex: needed, voteFloorTerm: floorTerm)
    }
}
