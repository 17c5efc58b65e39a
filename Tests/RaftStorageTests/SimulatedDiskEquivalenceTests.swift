import Testing
import RaftCore
@testable import RaftSimulation
@testable import RaftStorage

/// The simulator's disk and the real storage must mean the same thing by "persisted": after any
/// sequence of Readys and compactions, and any number of restarts, both hand back the same state.
@Suite struct SimulatedDiskEquivalenceTests {
    @Test(arguments: 1...16) func sameStateAfterRandomHistories(seed: UInt64) throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var random = SplitMix64(seed: seed)
        func below(_ n: UInt64) -> UInt64 { n == 0 ? 0 : random.next() % n }

        let bootstrap = DurableState.bootstrap(threeVoters)
        var disk = SimulatedDisk(bootstrap)
        var storage = try RaftStorage.open(directory: dir.path, segmentBytes: 512)
        try storage.initialize(bootstrap)
        var term: Term = 1
        var hard = HardState(term: 1)
        // As the core does, a term is durable before any entry of it.
        disk.persist(ready(hardState: hard))
        try storage.persist(ready(hardState: hard))

        for step in 0..<300 {
            let snapshotIndex = disk.snapshot.metadata.index
            let last = snapshotIndex + LogIndex(disk.entries.count)
            let commit = min(hard.commit, last)
            var next = Ready()
            switch below(10) {
            case 0...4:  // append new entries
                next.entries = (1...(1 + below(5))).map { Entry(term: term, index: last + $0, payload: .application([UInt8(truncatingIfNeeded: step)])) }
            case 5:  // a new leader overwrites the uncommitted tail
                term += 1
                let from = commit + 1 + below(last - commit + 1)
                next.entries = (0..<(1 + below(3))).map { Entry(term: term, index: from + $0, payload: .noop) }
                hard.term = term
                next.hardState = hard
            case 6:  // commit moves
                hard.commit = last
                next.hardState = hard
            case 7:  // a snapshot from the leader replaces the log
                term += 1
                let index = last + 1 + below(5)
                next.snapshot = Snapshot(metadata: SnapshotMetadata(index: index, term: term, configuration: threeVoters),
                                         data: [UInt8(truncatingIfNeeded: index)])
                hard = HardState(term: term, vote: nil, commit: index)
                next.hardState = hard
                next.entries = [Entry(term: term, index: index + 1, payload: .noop)]
            case 8:  // the application compacts what is committed
                guard commit > snapshotIndex else { continue }
                let index = snapshotIndex + 1 + below(commit - snapshotIndex)
                let entryTerm = disk.entries[Int(index - snapshotIndex - 1)].term
                let snapshot = Snapshot(metadata: SnapshotMetadata(index: index, term: entryTerm, configuration: threeVoters),
                                        data: [UInt8(truncatingIfNeeded: index), 1])
                disk.compact(to: snapshot)
                try storage.saveSnapshot(snapshot)
                continue
            default:  // crash and restart
                storage = try RaftStorage.open(directory: dir.path, segmentBytes: 512)
                #expect(storage.recovered == disk.durableState, "seed \(seed) step \(step)")
                continue
            }
            disk.persist(next)
            try storage.persist(next)
        }
        let final = try RaftStorage.open(directory: dir.path, segmentBytes: 512)
        #expect(final.recovered == disk.durableState, "seed \(seed) at the end")
    }
}
