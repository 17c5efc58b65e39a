import Foundation
import Testing
import RaftCodec
import RaftCore
@testable import RaftStorage

/// Torn writes and corruption of the last record: recovery must yield exactly the synced
/// prefix, or refuse with an error; it must never drop a synced entry silently nor replay garbage.
@Suite struct RecoveryTests {
    /// A storage with six synced entries whose last record (entry 6) ends the active segment.
    /// Returns the directory, the active segment and where its last record starts.
    private func prepared() throws -> (TemporaryDirectory, segment: String, lastRecordStart: Int) {
        let dir = TemporaryDirectory()
        let storage = try RaftStorage.open(directory: dir.path)
        try storage.initialize(.bootstrap(threeVoters))
        try storage.persist(ready(entries: entries(1...5, term: 1), hardState: HardState(term: 1, vote: 1, commit: 5)))
        let segment = try #require(dir.segmentPaths().last)
        let before = readBytes(segment).count
        try storage.persist(ready(entries: entries(6...6, term: 1)))
        #expect(readBytes(segment).count > before)
        return (dir, segment, before)
    }

    @Test func truncationAtEveryOffsetOfTheLastRecordYieldsTheSyncedPrefix() throws {
        let (dir, segment, start) = try prepared()
        defer { dir.remove() }
        let original = readBytes(segment)
        let scratch = TemporaryDirectory()
        defer { scratch.remove() }
        for cut in start..<original.count {
            dir.copy(to: scratch)
            let copy = scratch.path + "/wal/" + URL(fileURLWithPath: segment).lastPathComponent
            writeBytes(Array(original.prefix(cut)), to: copy)
            let storage = try RaftStorage.open(directory: scratch.path)
            let state = try #require(storage.recovered)
            #expect(state.entries == entries(1...5, term: 1), "cut at \(cut)")
            #expect(state.hardState == HardState(term: 1, vote: 1, commit: 5))
            if cut > start { #expect(storage.tornTail?.offset == start, "cut at \(cut)") }
            // The torn tail is gone from disk: a second recovery finds a clean log.
            #expect(try RaftStorage.open(directory: scratch.path).recovered?.entries == entries(1...5, term: 1))
        }
    }

    private func openResult(_ path: String) -> Result<DurableState?, StorageError> {
        do {
            return .success(try RaftStorage.open(directory: path).recovered)
        } catch {
            return .failure(error)
        }
    }

    @Test func everyBitFlipInTheLastRecordIsReportedAsCorruption() throws {
        let (dir, segment, start) = try prepared()
        defer { dir.remove() }
        let original = readBytes(segment)
        let scratch = TemporaryDirectory()
        defer { scratch.remove() }
        var flips = 0
        for position in start..<original.count {
            for bit in 0..<8 {
                dir.copy(to: scratch)
                var damaged = original
                damaged[position] ^= UInt8(1 << bit)
                let copy = scratch.path + "/wal/" + URL(fileURLWithPath: segment).lastPathComponent
                writeBytes(damaged, to: copy)
                switch openResult(scratch.path) {
                case .success(let recovered):
                    Issue.record("flip of bit \(bit) at \(position) recovered \(recovered?.entries.count ?? -1) entries")
                case .failure(.corrupt(let file, let offset, _)):
                    #expect(file == copy)
                    #expect(offset == start)
                case .failure(let other):
                    Issue.record("unexpected \(other)")
                }
                flips += 1
            }
        }
        #expect(flips == (original.count - start) * 8)
    }

    @Test func bitFlipInAnEarlierRecordIsCorruptionNotATornTail() throws {
        let (dir, segment, start) = try prepared()
        defer { dir.remove() }
        var damaged = readBytes(segment)
        damaged[start - 3] ^= 0x10
        writeBytes(damaged, to: segment)
        #expect(throws: StorageError.self) { try RaftStorage.open(directory: dir.path) }
    }

    @Test func zeroFilledTailIsATornWrite() throws {
        let (dir, segment, _) = try prepared()
        defer { dir.remove() }
        writeBytes(readBytes(segment) + [UInt8](repeating: 0, count: 4096), to: segment)
        let storage = try RaftStorage.open(directory: dir.path)
        #expect(storage.recovered?.entries == entries(1...6, term: 1))
        #expect(storage.tornTail?.bytes == 4096)
    }

    @Test func damageInAnOlderSegmentIsNeverTreatedAsTorn() throws {
        let (dir, segment, start) = try prepared()
        defer { dir.remove() }
        // Reopening starts a new active segment: the damaged one is no longer the last.
        _ = try RaftStorage.open(directory: dir.path)
        writeBytes(Array(readBytes(segment).prefix(start + 5)), to: segment)
        #expect(throws: StorageError.self) { try RaftStorage.open(directory: dir.path) }
    }

    @Test func segmentWithAForeignHeaderIsRefused() throws {
        let (dir, segment, _) = try prepared()
        defer { dir.remove() }
        var bytes = readBytes(segment)
        bytes[0] = UInt8(ascii: "X")
        writeBytes(bytes, to: segment)
        #expect(throws: StorageError.corrupt(file: segment, offset: 0, reason: "not a pgquorum WAL segment (bad magic)")) {
            try RaftStorage.open(directory: dir.path)
        }
    }
}

/// Snapshots are written to a temporary file, synced and renamed: a crash at any step leaves
/// the old snapshot or the new one usable.
@Suite struct SnapshotCrashTests {
    private let old = Snapshot(metadata: SnapshotMetadata(index: 10, term: 1, configuration: threeVoters), data: [1])
    private let new = Snapshot(metadata: SnapshotMetadata(index: 20, term: 1, configuration: threeVoters), data: [2, 2])

    private func storageWithOldSnapshot() throws -> TemporaryDirectory {
        let dir = TemporaryDirectory()
        let storage = try RaftStorage.open(directory: dir.path)
        try storage.initialize(.bootstrap(threeVoters))
        try storage.persist(ready(entries: entries(1...25, term: 1), hardState: HardState(term: 1, commit: 25)))
        try storage.saveSnapshot(old)
        return dir
    }

    @Test func partialTemporaryFileLeavesTheOldSnapshot() throws {
        let dir = try storageWithOldSnapshot()
        defer { dir.remove() }
        let encoded = SnapshotFile.encode(new)
        let path = dir.path + "/snapshots/" + SnapshotFile.fileName(for: new.metadata) + ".tmp"
        for length in [0, 1, encoded.count / 2, encoded.count] {
            writeBytes(Array(encoded.prefix(length)), to: path)
            let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
            #expect(state.snapshot == old)
            #expect(state.entries == entries(11...25, term: 1))
            #expect(!FileManager.default.fileExists(atPath: path))
        }
    }

    @Test func renamedButOldNotYetDeletedUsesTheNewSnapshot() throws {
        let dir = try storageWithOldSnapshot()
        defer { dir.remove() }
        writeBytes(SnapshotFile.encode(new), to: dir.path + "/snapshots/" + SnapshotFile.fileName(for: new.metadata))
        #expect(dir.snapshotNames().count == 2)
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        #expect(state.snapshot == new)
        #expect(state.entries == entries(21...25, term: 1))
    }

    @Test func damagedNewestSnapshotIsRefusedNotSkipped() throws {
        let dir = try storageWithOldSnapshot()
        defer { dir.remove() }
        var encoded = SnapshotFile.encode(new)
        encoded[encoded.count - 6] ^= 1
        writeBytes(encoded, to: dir.path + "/snapshots/" + SnapshotFile.fileName(for: new.metadata))
        #expect(throws: StorageError.self) { try RaftStorage.open(directory: dir.path) }
    }
}

@Suite struct InspectTests {
    @Test func inspectReportsATornTailWithoutCuttingIt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...3, term: 1), hardState: HardState(term: 1)))
        }
        let segment = try #require(dir.segmentPaths().last)
        let damaged = readBytes(segment).dropLast(3)
        writeBytes(Array(damaged), to: segment)
        let inspected = try RaftStorage.inspect(directory: dir.path)
        // The last record written was the hard state (after the entries): it is the torn one.
        // The entries' term is kept; the vote that went with it was never sent.
        #expect(inspected.recovered?.entries == entries(1...3, term: 1))
        #expect(inspected.recovered?.hardState == HardState(term: 1))
        #expect(inspected.tornTail?.file == segment)
        #expect(readBytes(segment) == Array(damaged))
        #expect(throws: StorageError.self) { try inspected.persist(ready(hardState: HardState(term: 2))) }
    }

    @Test func inspectOfAMissingDirectoryFails() {
        #expect(throws: StorageError.self) { try RaftStorage.inspect(directory: "/nonexistent/pgquorum") }
    }
}

@Suite struct RecoveryEdgeTests {
    /// Entries reached the disk but the hard state written after them in the same batch did not:
    /// the node must still start, in the entries' term, with no vote.
    @Test func entriesOfANewerTermWithoutTheirHardStateStillStartANode() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...2, term: 1), hardState: HardState(term: 1, vote: 1, commit: 2)))
            try storage.persist(ready(entries: entries(3...4, term: 3), hardState: HardState(term: 3, vote: 2, commit: 2)))
        }
        let segment = try #require(dir.segmentPaths().last)
        writeBytes(Array(readBytes(segment).dropLast(5)), to: segment)
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        #expect(state.entries.last?.index == 4)
        #expect(state.hardState == HardState(term: 3, vote: nil, commit: 2))
        let node = try RaftNode(id: 1, restoring: state)
        #expect(node.term == 3 && node.vote == nil)
    }

    @Test func leaderSnapshotRenamedBeforeItsRecordsStillStartsANode() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(entries: entries(1...4, term: 1), hardState: HardState(term: 1, vote: 2)))
        }
        let snapshot = Snapshot(metadata: SnapshotMetadata(index: 9, term: 4, configuration: threeVoters), data: [])
        writeBytes(SnapshotFile.encode(snapshot), to: dir.path + "/snapshots/" + SnapshotFile.fileName(for: snapshot.metadata))
        let state = try #require(try RaftStorage.open(directory: dir.path).recovered)
        let node = try RaftNode(id: 1, restoring: state)
        #expect(node.term == 4 && node.vote == nil && node.lastIndex == 9)
    }

    @Test func segmentFromANewerVersionIsNotCalledCorrupt() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try RaftStorage.open(directory: dir.path).initialize(.bootstrap(threeVoters))
        let segment = try #require(dir.segmentPaths().last)
        var bytes = readBytes(segment)
        bytes[8] = 2
        let crc = CRC32C.checksum(Array(bytes[0..<24]))
        for shift in 0..<4 { bytes[24 + shift] = UInt8(truncatingIfNeeded: crc >> (8 * UInt32(shift))) }
        writeBytes(bytes, to: segment)
        #expect(throws: StorageError.unsupportedVersion(file: segment, version: 2, supported: 1)) {
            try RaftStorage.open(directory: dir.path)
        }
        #expect(!StorageError.unsupportedVersion(file: segment, version: 2, supported: 1).description.contains("wipe it"))
    }

    @Test func emptiedLogDirectoryIsCorruptionNotAFreshStart() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try RaftStorage.open(directory: dir.path)
        try storage.initialize(.bootstrap(threeVoters))
        try storage.persist(ready(hardState: HardState(term: 2, vote: 3)))
        for segment in dir.segmentPaths() { try FileManager.default.removeItem(atPath: segment) }
        #expect(throws: StorageError.self) { try RaftStorage.open(directory: dir.path) }
    }

    @Test func initialisationInterruptedBeforeItsSnapshotStartsAfresh() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        try RaftStorage.open(directory: dir.path).initialize(.bootstrap(threeVoters))
        for name in dir.snapshotNames() { try FileManager.default.removeItem(atPath: dir.path + "/snapshots/" + name) }
        let storage = try RaftStorage.open(directory: dir.path)
        #expect(storage.recovered == nil)
        try storage.initialize(.joining)
        #expect(try RaftStorage.open(directory: dir.path).recovered == .joining)
    }

    @Test func oversizedRecordIsRefusedBeforeWriting() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try RaftStorage.open(directory: dir.path)
        try storage.initialize(.bootstrap(threeVoters))
        let huge = Entry(term: 1, index: 1, payload: .application([UInt8](repeating: 1, count: WALRecord.maxPayload + 1)))
        #expect(throws: StorageError.recordTooLarge(bytes: WALRecord.maxPayload + 1 + 22, limit: WALRecord.maxPayload)) {
            try storage.persist(ready(entries: [huge]))
        }
    }
}

@Suite struct WriteFailureTests {
    @Test func oversizedBatchWritesNothingNotEvenItsSnapshot() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        let storage = try RaftStorage.open(directory: dir.path)
        try storage.initialize(.bootstrap(threeVoters))
        let snapshot = Snapshot(metadata: SnapshotMetadata(index: 5, term: 1, configuration: threeVoters), data: [])
        let huge = Entry(term: 1, index: 6, payload: .application([UInt8](repeating: 0, count: WALRecord.maxPayload)))
        #expect(throws: StorageError.self) { try storage.persist(ready(entries: [huge], snapshot: snapshot)) }
        #expect(dir.snapshotNames() == [SnapshotFile.fileName(for: DurableState.bootstrap(threeVoters).snapshot.metadata)])
        // Nothing reached the disk, so the storage is still usable.
        try storage.persist(ready(hardState: HardState(term: 1)))
        #expect(try RaftStorage.open(directory: dir.path).recovered?.hardState == HardState(term: 1))
    }

    @Test func snapshotWhoseOnlySegmentIsTornIsCorruption() throws {
        let dir = TemporaryDirectory()
        defer { dir.remove() }
        do {
            let storage = try RaftStorage.open(directory: dir.path)
            try storage.initialize(.bootstrap(threeVoters))
            try storage.persist(ready(hardState: HardState(term: 3, vote: 2)))
        }
        for segment in dir.segmentPaths() { writeBytes([UInt8](repeating: 0, count: 100), to: segment) }
        for segment in dir.segmentPaths().dropLast() { try FileManager.default.removeItem(atPath: segment) }
        #expect(throws: StorageError.self) { try RaftStorage.open(directory: dir.path) }
    }
}
