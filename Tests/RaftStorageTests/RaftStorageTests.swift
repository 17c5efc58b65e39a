import Foundation
import Testing
import RaftCodec
import RaftCore
@testable import RaftStorage

@Suite struct RaftStorageTests {
    @Test func freshDirectoryHasNothingToRecover() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try RaftStorage.open(directory: dir.path)
        #expect(storage.recovered == nil)
    }

    @Test func writtenStateComesBackAfterReopening() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...5, term: 1), hardState: HardState(term: 1, vote: 2, commit: 3)))
            try storage.persist(ready(hardState: HardState(term: 1, vote: 2, commit: 5)))
        }
        let reopened = try RaftStorage.open(directory: dir.path)
        let state = try #require(reopened.recovered)
        #expect(state.hardState == HardState(term: 1, vote: 2, commit: 5))
        #expect(state.entries == entries(1...5, term: 1))
        #expect(state.snapshot.metadata.configuration == threeVoters)
        #expect(reopened.tornTail == nil)
    }

    /// A wiped node's vote floor survives restarts; a hard state without one is encoded as
    /// before (25 bytes), so older versions read the records of a node never wiped.
    @Test func theVoteFloorIsDurableAndOptional() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        var wiped = DurableState.bootstrap(threeVoters)
        wiped.hardState = HardState(term: 7, vote: 3, commit: 0, voteFloorIndex: 42, voteFloorTerm: 6)
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(wiped)
            try storage.persist(ready(entries: entries(1...2, term: 7), hardState: HardState(term: 7, vote: 3, commit: 2, voteFloorIndex: 42, voteFloorTerm: 6)))
        }
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        #expect(state.hardState == HardState(term: 7, vote: 3, commit: 2, voteFloorIndex: 42, voteFloorTerm: 6))

        var plain = BinaryWriter(capacity: 64)
        RaftEncoding.encode(HardState(term: 1, vote: 2, commit: 3), into: &plain)
        #expect(plain.bytes.count == 25)
        var floored = BinaryWriter(capacity: 64)
        RaftEncoding.encode(HardState(term: 1, vote: 2, commit: 3, voteFloorIndex: 4, voteFloorTerm: 1), into: &floored)
        var reader = BinaryReader(floored.bytes)
        #expect(try RaftEncoding.decodeHardState(from: &reader) == HardState(term: 1, vote: 2, commit: 3, voteFloorIndex: 4, voteFloorTerm: 1))
    }

    @Test func laterEntriesReplaceAConflictingTail() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...6, term: 1), hardState: HardState(term: 1)))
            try storage.persist(ready(entries: entries(3...4, term: 2), hardState: HardState(term: 2)))
        }
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        #expect(state.entries == entries(1...2, term: 1) + entries(3...4, term: 2))
        #expect(state.hardState.term == 2)
    }

    @Test func recoveredStateStartsARaftNode() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...3, term: 2), hardState: HardState(term: 2, vote: 1, commit: 2)))
        }
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        let node = try RaftNode(id: 1, restoring: state)
        #expect(node.term == 2 && node.vote == 1 && node.lastIndex == 3 && node.commitIndex == 2)
    }

    @Test func initialisingTwiceIsRefused() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try RaftStorage.open(directory: dir.path)
        try storage.initialize(.bootstrap(threeVoters))
        #expect(throws: StorageError.self) { try storage.initialize(.joining) }
        #expect(throws: StorageError.self) { try RaftStorage.open(directory: dir.path).initialize(.joining) }
    }

    @Test func hardStateSurvivesRolloverAndCompaction() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path, segmentBytes: 300)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(hardState: HardState(term: 4, vote: 3, commit: 0)))
            for index in LogIndex(1)...40 {
                try storage.persist(ready(entries: entries(index...index, term: 4)))
            }
            #expect(dir.segmentPaths().count > 5)
            let snapshot = Snapshot(metadata: SnapshotMetadata(index: 30, term: 4, configuration: threeVoters), data: [7])
            try storage.saveSnapshot(snapshot)
        }
        let segmentsLeft = dir.segmentPaths().count
        let state = try #require(try RaftStorage.open(directory: dir.path, segmentBytes: 300).recovered)
        #expect(state.hardState == HardState(term: 4, vote: 3, commit: 0))
        #expect(state.snapshot.metadata.index == 30)
        #expect(state.snapshot.data == [7])
        #expect(state.entries == entries(31...40, term: 4))
        #expect(segmentsLeft < 6)
        #expect(dir.snapshotNames().count == 1)
    }

    @Test func snapshotFromTheLeaderReplacesTheLog() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...20, term: 1), hardState: HardState(term: 1)))
            let snapshot = Snapshot(metadata: SnapshotMetadata(index: 50, term: 3, configuration: threeVoters), data: [1, 2])
            try storage.persist(ready(entries: entries(51...52, term: 3), hardState: HardState(term: 3, commit: 50),
                                      snapshot: snapshot))
        }
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        #expect(state.snapshot.metadata.index == 50)
        #expect(state.entries == entries(51...52, term: 3))
        #expect(state.hardState == HardState(term: 3, commit: 50))
    }

    /// A crash after the snapshot file is renamed into place but before the log records the
    /// reset: the snapshot wins and the older entries it covers are ignored.
    @Test func snapshotWrittenButLogNotResetStillRecovers() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...10, term: 1), hardState: HardState(term: 1)))
        }
        let snapshot = Snapshot(metadata: SnapshotMetadata(index: 15, term: 2, configuration: threeVoters), data: [9])
        writeBytes(SnapshotFile.encode(snapshot), to: dir.path + "/snapshots/" + SnapshotFile.fileName(for: snapshot.metadata))
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        #expect(state.snapshot == snapshot)
        #expect(state.entries.isEmpty)
    }

    @Test func logThatDivergedFromANewerSnapshotIsDropped() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...10, term: 1), hardState: HardState(term: 2)))
        }
        let snapshot = Snapshot(metadata: SnapshotMetadata(index: 5, term: 2, configuration: threeVoters), data: [])
        writeBytes(SnapshotFile.encode(snapshot), to: dir.path + "/snapshots/" + SnapshotFile.fileName(for: snapshot.metadata))
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        #expect(state.snapshot.metadata.index == 5)
        #expect(state.entries.isEmpty)
    }

    @Test func aMissingSnapshotDirectoryIsCorruption() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try RaftStorage.open(directory: dir.path)
        try storage.initialize(.bootstrap(threeVoters))
        try storage.persist(ready(hardState: HardState(term: 2, vote: 1)))
        try FileManager.default.removeItem(atPath: dir.path + "/snapshots")
        #expect(throws: StorageError.self) { try RaftStorage.open(directory: dir.path) }
    }

    /// A hard state that only moves the commit index is written but not synced (`mustSync`);
    /// entries and a new term are synced, and the write is read back either way.
    @Test func onlyEntriesAndVotingStateAreSynced() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            let initial = storage.syncs
            try storage.persist(ready(entries: entries(1...3, term: 1), hardState: HardState(term: 1, vote: 1)))
            #expect(storage.syncs == initial + 1)
            try storage.persist(ready(hardState: HardState(term: 1, vote: 1, commit: 3), mustSync: false))
            #expect(storage.syncs == initial + 1)
            try storage.persist(ready(hardState: HardState(term: 2, vote: 2, commit: 3)))
            #expect(storage.syncs == initial + 2)
        }
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        #expect(state.hardState == HardState(term: 2, vote: 2, commit: 3))
    }

    /// An unsynced write may be torn only in the last segment (recovery cuts a torn tail there,
    /// elsewhere it is corruption): a rollover syncs the old segment first.
    @Test func aRolloverSyncsAnUnsyncedWriteFirst() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try RaftStorage.open(directory: dir.path, segmentBytes: 300)
        try storage.initialize(.bootstrap(threeVoters))
        try storage.persist(ready(entries: entries(1...1, term: 1), hardState: HardState(term: 1, vote: 1)))
        var syncs = storage.syncs
        var commit: LogIndex = 0
        while dir.segmentPaths().count < 3 {
            let segments = dir.segmentPaths().count
            commit += 1
            try storage.persist(ready(hardState: HardState(term: 1, vote: 1, commit: min(commit, 1)), mustSync: false))
            let rolledOver = dir.segmentPaths().count > segments
            // The segment that was active held unsynced writes when the new one started.
            #expect(storage.syncs == syncs + (rolledOver && commit > 1 ? 1 : 0), "write \(commit)")
            syncs = storage.syncs
        }
        #expect(storage.syncs > 0)
    }

    @Test func corruptionMessageNamesFileOffsetAndRemedy() {
        let error = StorageError.corrupt(file: "/data/wal/0000000000000001.seg", offset: 120, reason: "record checksum mismatch")
        #expect(error.description.contains("/data/wal/0000000000000001.seg at offset 120: record checksum mismatch"))
        #expect(error.description.contains("docs/storage.md"))
        #expect(!error.description.contains("\n"))
    }
}
