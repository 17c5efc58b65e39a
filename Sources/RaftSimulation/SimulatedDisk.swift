import RaftCore

/// What survives a crash: exactly what the node's Readys asked to persist, nothing more.
struct SimulatedDisk {
    var hardState = HardState()
    /// The hard state as of the last synced write: a crash may lose a later one that was
    /// written without a sync (`Ready.mustSync` false: only the commit index moved).
    private var syncedHardState = HardState()
    var snapshot: Snapshot
    var entries: [Entry] = []

    init(_ state: DurableState) {
        hardState = state.hardState
        syncedHardState = state.hardState
        snapshot = state.snapshot
        entries = state.entries
    }

    var durableState: DurableState { DurableState(hardState: hardState, snapshot: snapshot, entries: entries) }

    /// Step 2 of a Ready: snapshot, then entries (replacing the stored tail), then hard state.
    mutating func persist(_ ready: Ready) {
        if let incoming = ready.snapshot {
            snapshot = incoming
            entries = []
        }
        if let first = ready.entries.first {
            let keep = Int(first.index - snapshot.metadata.index - 1)
            if keep < entries.count { entries.removeSubrange(max(0, keep)...) }
            entries.append(contentsOf: ready.entries)
        }
        if let state = ready.hardState { hardState = state }
        if ready.mustSync { syncedHardState = hardState }
    }

    /// A crash before the kernel wrote back what was never synced.
    mutating func loseUnsyncedWrites() { hardState = syncedHardState }

    /// The application stored a snapshot of its own state and dropped the entries it covers.
    mutating func compact(to newSnapshot: Snapshot) {
        let drop = Int(newSnapshot.metadata.index - snapshot.metadata.index)
        entries.removeFirst(min(drop, entries.count))
        snapshot = newSnapshot
    }

    /// Whether the entry `index`@`term` is on this disk (in the log, or covered by the snapshot).
    func holds(index: LogIndex, term: Term) -> Bool {
        if index <= snapshot.metadata.index { return true }
        let position = Int(index - snapshot.metadata.index - 1)
        return position < entries.count && entries[position].term == term
    }
}
