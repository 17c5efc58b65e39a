/// The in-memory view of one node's log: a snapshot followed by the entries after it, plus the
/// bookkeeping of what is durable, committed and applied. Storage (a later layer) persists what
/// `RaftNode.ready()` hands out; this type only tracks it.
struct RaftLog: Sendable {
    /// Everything up to `snapshot.metadata.index` lives only in the snapshot.
    private(set) var snapshot: Snapshot
    /// Entries with indexes `snapshot.metadata.index + 1 ... lastIndex`.
    private(set) var entries: [Entry]
    var committed: LogIndex
    var applied: LogIndex
    /// Entries up to here are durable (declared persisted through `advance`).
    var stableIndex: LogIndex
    /// A snapshot received from the leader that the application has not persisted yet.
    var unstableSnapshot: Snapshot?

    init(snapshot: Snapshot, entries: [Entry], committed: LogIndex) {
        self.snapshot = snapshot
        self.entries = entries
        let last = snapshot.metadata.index + LogIndex(entries.count)
        self.committed = min(max(committed, snapshot.metadata.index), last)
        self.applied = snapshot.metadata.index
        self.stableIndex = last
    }

    var firstIndex: LogIndex { snapshot.metadata.index + 1 }
    var lastIndex: LogIndex { snapshot.metadata.index + LogIndex(entries.count) }
    var lastTerm: Term { entries.last?.term ?? snapshot.metadata.term }

    /// The term of the entry at `index`, or nil when it is compacted away or beyond the end.
    func term(at index: LogIndex) -> Term? {
        if index == snapshot.metadata.index { return snapshot.metadata.term }
        guard index > snapshot.metadata.index, index <= lastIndex else { return nil }
        return entries[position(index)].term
    }

    func entry(at index: LogIndex) -> Entry? {
        guard index >= firstIndex, index <= lastIndex else { return nil }
        return entries[position(index)]
    }

    func matches(index: LogIndex, term: Term) -> Bool { self.term(at: index) == term }

    /// §5.4.1: a candidate's log is at least as up to date as ours.
    func isUpToDate(lastIndex otherIndex: LogIndex, lastTerm otherTerm: Term) -> Bool {
        otherTerm > lastTerm || (otherTerm == lastTerm && otherIndex >= lastIndex)
    }

    /// Entries from `start` on, at most `maxCount`; nil when `start` is compacted away.
    func entries(from start: LogIndex, maxCount: Int) -> [Entry]? {
        guard start >= firstIndex else { return nil }
        guard start <= lastIndex else { return [] }
        let lower = position(start)
        let upper = min(entries.count, lower + maxCount)
        return Array(entries[lower..<upper])
    }

    func entries(in range: ClosedRange<LogIndex>) -> [Entry] {
        guard range.lowerBound >= firstIndex, range.upperBound <= lastIndex else { return [] }
        return Array(entries[position(range.lowerBound)...position(range.upperBound)])
    }

    /// Entries that are not durable yet: everything after `stableIndex`.
    var unstableEntries: [Entry] {
        let from = max(stableIndex + 1, firstIndex)
        guard from <= lastIndex else { return [] }
        return Array(entries[position(from)...])
    }

    /// The last index of `term` at or below `index`, if the log holds one.
    func lastIndex(ofTerm term: Term, atOrBelow index: LogIndex) -> LogIndex? {
        var i = min(index, lastIndex)
        while i >= firstIndex {
            let t = entries[position(i)].term
            if t == term { return i }
            if t < term { return nil }
            i -= 1
        }
        return snapshot.metadata.term == term && snapshot.metadata.index <= index ? snapshot.metadata.index : nil
    }

    /// The first index of the run of `term` that contains `index`, not looking below the committed
    /// prefix (which matches the leader anyway).
    func firstIndex(ofTermAt index: LogIndex) -> LogIndex {
        guard let term = term(at: index) else { return index }
        var i = index
        while i > max(firstIndex, committed + 1), self.term(at: i - 1) == term { i -= 1 }
        return i
    }

    /// Appends a leader's own new entry.
    mutating func append(_ entry: Entry) {
        entries.append(entry)
    }

    /// Merges entries that follow `prevIndex` in the leader's log: entries already present with the
    /// same term are kept; the first conflicting one and everything after it are replaced.
    /// Returns the index of the first replaced entry, if any, so the caller can recompute the
    /// membership. The caller guarantees that no committed entry conflicts.
    @discardableResult
    mutating func merge(_ incoming: [Entry]) -> LogIndex? {
        for (offset, entry) in incoming.enumerated() {
            var truncatedFrom: LogIndex? = nil
            if let existing = term(at: entry.index) {
                if existing == entry.term { continue }
                entries.removeSubrange(position(entry.index)...)
                stableIndex = min(stableIndex, entry.index - 1)
                truncatedFrom = entry.index
            }
            entries.append(contentsOf: incoming[offset...])
            return truncatedFrom
        }
        return nil
    }

    /// Replaces the whole log by a snapshot received from the leader.
    mutating func restore(_ newSnapshot: Snapshot) {
        snapshot = newSnapshot
        entries = []
        committed = newSnapshot.metadata.index
        stableIndex = min(stableIndex, newSnapshot.metadata.index)
        unstableSnapshot = newSnapshot
    }

    /// Drops entries up to `metadata.index`, which `data` now represents.
    mutating func compact(to newSnapshot: Snapshot) {
        let index = newSnapshot.metadata.index
        guard index > snapshot.metadata.index, index <= lastIndex else { return }
        entries.removeFirst(Int(index - snapshot.metadata.index))
        snapshot = newSnapshot
    }

    /// The membership in force after `index`: the configuration recorded by the last membership
    /// entry at or before it, else the snapshot's.
    func configuration(atOrBefore index: LogIndex) -> (configuration: Configuration, index: LogIndex) {
        var i = min(index, lastIndex)
        while i >= firstIndex {
            if case .membership(_, let result) = entries[position(i)].payload { return (result, i) }
            i -= 1
        }
        return (snapshot.metadata.configuration, snapshot.metadata.index)
    }

    private func position(_ index: LogIndex) -> Int { Int(index - firstIndex) }
}
