/// When an agent compacts its Raft log. Every `interval` applied entries it takes a checkpoint:
/// the cluster state's snapshot bytes as of that index. Once `keep` more entries are applied, it
/// compacts the log through the checkpoint. So the log always keeps at least the last `keep`
/// entries: a follower that fell that far behind catches up from entries, and only one further
/// behind (or a wiped one) receives the snapshot. Pure: the agent calls it as it applies.
public struct CompactionSchedule: Sendable, Equatable {
    public let interval: UInt64
    public let keep: UInt64
    /// The state as of `index`, waiting until the log behind it may go.
    public struct Checkpoint: Sendable, Equatable {
        public var index: UInt64
        public var data: [UInt8]
    }
    public private(set) var checkpoint: Checkpoint?
    /// The index of the newest snapshot (made here or restored): the next checkpoint is counted
    /// from it.
    public private(set) var snapshotIndex: UInt64

    public init(interval: UInt64, keep: UInt64, snapshotIndex: UInt64) {
        self.interval = max(1, interval)
        self.keep = keep
        self.snapshotIndex = snapshotIndex
    }

    /// The entry at `index` was just applied and `state` is the state after it.
    public mutating func applied(index: UInt64, state: ClusterState) {
        let base = checkpoint?.index ?? snapshotIndex
        guard checkpoint == nil, index >= base + interval else { return }
        checkpoint = Checkpoint(index: index, data: ClusterStateSnapshot.encode(state))
    }

    /// The checkpoint to compact through now that `appliedIndex` is applied, if one is due. The
    /// caller compacts and stores it, then calls `compacted(through:)`.
    public func due(appliedIndex: UInt64) -> Checkpoint? {
        guard let checkpoint, appliedIndex >= checkpoint.index + keep else { return nil }
        return checkpoint
    }

    /// The log is compacted through `index` (by this schedule's checkpoint, or a snapshot from
    /// the leader replaced the log): a checkpoint at or below it is of no use any more.
    public mutating func compacted(through index: UInt64) {
        snapshotIndex = max(snapshotIndex, index)
        if let checkpoint, checkpoint.index <= index { self.checkpoint = nil }
    }
}
