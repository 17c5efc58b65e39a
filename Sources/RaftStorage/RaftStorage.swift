import RaftCodec
import RaftCore

/// Durable Raft state of one node: a write-ahead log of checksummed records split into segment
/// files, and snapshot files.
///
/// Layout under `directory`:
/// - `wal/<sequence>.seg`: segments, each starting with a header and the hard state of the
///   moment it was created, then entry, hard-state and log-reset records, append-only;
/// - `snapshots/snap-<index>-<term>.snap`: the newest snapshot (older ones are deleted once a
///   newer one is durable).
///
/// `persist(_:)` writes everything a `Ready` asks for with one `write` and one `fdatasync`;
/// only after it returns may the agent send `Ready.messagesAfterPersist`. Not thread-safe: the
/// agent's single Raft task owns it.
public final class RaftStorage {
    public let directory: String
    /// What `open` recovered; nil for a directory that has never been initialised.
    public private(set) var recovered: DurableState?
    /// A torn tail that recovery cut off (an unsynced, partial last write), for the agent to log.
    public private(set) var tornTail: (file: String, offset: Int, bytes: Int)?

    /// Segments roll over once they pass this size.
    public let segmentBytes: Int
    /// Segments found, oldest first, with the highest entry index each holds.
    public var segmentSummary: [(path: String, highestEntryIndex: LogIndex)] {
        segments.map { ($0.path, $0.highestEntryIndex) }
    }

    private struct Segment {
        var sequence: UInt64
        var path: String
        /// The highest entry index any record in the segment holds (0 when none).
        var highestEntryIndex: LogIndex
    }

    private var walDirectory: String { directory + "/wal" }
    private var snapshotDirectory: String { directory + "/snapshots" }
    private var segments: [Segment] = []
    private var activeDescriptor: Int32 = -1
    private var activeBytes = 0
    private var hardState = HardState()
    private var snapshotIndex: LogIndex = 0
    /// The active segment holds a write that was not synced.
    private var activeHasUnsyncedWrites = false
    /// Syncs of the log so far (`Ready.mustSync` skips them when only the commit index moved).
    public private(set) var syncs: UInt64 = 0
    /// Set by the first failed write or sync. After a failed fsync the kernel may have dropped
    /// the dirty pages, so what is on disk is unknown: the only safe continuation is a restart
    /// that recovers from the files.
    private var failure: StorageError?

    private let readOnly: Bool

    private init(directory: String, segmentBytes: Int, readOnly: Bool) {
        self.directory = directory
        self.segmentBytes = segmentBytes
        self.readOnly = readOnly
    }

    deinit {
        if activeDescriptor >= 0 { close(activeDescriptor) }
    }

    /// The segment size the agent uses: small enough that compaction deletes whole segments
    /// often, which bounds the log on disk and the replay at start, large enough that rollovers
    /// (a file creation and two syncs) are rare.
    public static let agentSegmentBytes = 8 << 20

    /// Opens (creating if needed) the storage in `directory`, verifies everything on disk and
    /// recovers the durable state. A torn tail is cut off; any other damage is an error.
    public static func open(directory: String, segmentBytes: Int = 64 << 20) throws(StorageError) -> RaftStorage {
        let storage = RaftStorage(directory: directory, segmentBytes: segmentBytes, readOnly: false)
        try storage.recover()
        return storage
    }

    /// Verifies the storage in `directory` and reports what recovery would find, changing
    /// nothing on disk (a torn tail is reported, not cut off). The result cannot write.
    public static func inspect(directory: String) throws(StorageError) -> RaftStorage {
        let storage = RaftStorage(directory: directory, segmentBytes: .max, readOnly: true)
        try storage.recover()
        return storage
    }

    /// Writes the first state of a node that has never run (`DurableState.bootstrap` or
    /// `.joining`). The snapshot file goes last: until it exists, recovery treats the directory
    /// as never initialised.
    public func initialize(_ state: DurableState) throws(StorageError) {
        guard recovered == nil, !readOnly else {
            throw .corrupt(file: directory, offset: 0, reason: "refusing to initialise storage that already holds Raft state")
        }
        if let failure { throw failure }
        var records: [WALRecord] = state.entries.map { .entry($0) }
        records.append(.hardState(state.hardState))
        let batch = try Batch(records)
        try failing { () throws(StorageError) in
            try startSegment()
            try append(batch, sync: true)
            hardState = state.hardState
            try writeSnapshotFile(state.snapshot)
        }
        recovered = state
    }

    /// Step 2 of a `Ready`: the snapshot (if any), then the entries, then the hard state, made
    /// durable before returning.
    public func persist(_ ready: Ready) throws(StorageError) {
        try requireWritable()
        var records: [WALRecord] = []
        if let snapshot = ready.snapshot {
            records.append(.logReset(index: snapshot.metadata.index, term: snapshot.metadata.term))
        }
        records.append(contentsOf: ready.entries.map { .entry($0) })
        if let state = ready.hardState { records.append(.hardState(state)) }
        // Encoding first: a record too large is refused before anything reaches the disk.
        let batch = try Batch(records)
        try failing { () throws(StorageError) in
            if let snapshot = ready.snapshot { try writeSnapshotFile(snapshot) }
            if !records.isEmpty { try append(batch, sync: ready.mustSync) }
            // Only now is the new hard state written (synced, unless only the commit index moved:
            // a rollover syncs it first), and may head the next segment.
            if let state = ready.hardState { hardState = state }
            if let snapshot = ready.snapshot { try discardBelow(snapshot.metadata.index) }
        }
    }

    /// Runs `body`; any error it throws stops all further writes (see `failure`).
    private func failing(_ body: () throws(StorageError) -> Void) throws(StorageError) {
        do {
            try body()
        } catch {
            failure = error
            throw error
        }
    }

    /// Records encoded for one write.
    private struct Batch {
        var bytes: [UInt8] = []
        var highestEntryIndex: LogIndex = 0

        init(_ records: [WALRecord]) throws(StorageError) {
            for record in records {
                bytes.append(contentsOf: try record.encoded())
                if case .entry(let entry) = record { highestEntryIndex = max(highestEntryIndex, entry.index) }
            }
        }
    }

    /// Stores a snapshot the application made (log compaction), then deletes the segments and
    /// older snapshots it makes unnecessary.
    public func saveSnapshot(_ snapshot: Snapshot) throws(StorageError) {
        try requireWritable()
        guard snapshot.metadata.index > snapshotIndex else { return }
        try failing { () throws(StorageError) in
            try writeSnapshotFile(snapshot)
            try discardBelow(snapshot.metadata.index)
        }
    }

    // MARK: - Writing

    private func requireWritable() throws(StorageError) {
        if let failure { throw failure }
        guard activeDescriptor >= 0 else {
            throw .io(operation: "write to", path: directory + " (opened by inspect, or never initialised)", errno: EBADF)
        }
    }

    /// Writes one batch, and syncs the segment when asked (a sync also makes every earlier
    /// unsynced write of the segment durable). Callers run it under `failing`: after an error
    /// here the file's tail is unknown (a half-made newer segment, or a write the kernel may have
    /// dropped).
    private func append(_ batch: Batch, sync: Bool) throws(StorageError) {
        if activeBytes >= segmentBytes { try startSegment() }
        guard let active = segments.last else { return }
        try FileIO.writeAll(activeDescriptor, batch.bytes, path: active.path)
        if sync {
            try FileIO.syncData(activeDescriptor, path: active.path)
            syncs += 1
        }
        activeHasUnsyncedWrites = !sync
        activeBytes += batch.bytes.count
        segments[segments.count - 1].highestEntryIndex = max(active.highestEntryIndex, batch.highestEntryIndex)
    }

    /// Creates the next segment, beginning with the current hard state so that deleting older
    /// segments never loses it. The previous segment is synced first: a write left unsynced
    /// (`Ready.mustSync` false) may be torn by a power loss only while its segment is the last
    /// one, where recovery cuts a torn tail; in an older segment it would be corruption.
    private func startSegment() throws(StorageError) {
        if let previous = segments.last {
            if activeDescriptor >= 0 {
                if activeHasUnsyncedWrites {
                    try FileIO.syncData(activeDescriptor, path: previous.path)
                    syncs += 1
                }
            } else {
                // At open: the last run's final writes may not have been synced.
                let descriptor = try FileIO.openForAppend(previous.path, create: false)
                defer { close(descriptor) }
                try FileIO.syncData(descriptor, path: previous.path)
            }
            activeHasUnsyncedWrites = false
        }
        let sequence = (segments.last?.sequence ?? 0) + 1
        let path = walDirectory + "/" + SnapshotFile.hex(sequence) + ".seg"
        let descriptor = try FileIO.openForAppend(path, create: true)
        var bytes = SegmentHeader(sequence: sequence).encoded()
        bytes.append(contentsOf: try WALRecord.hardState(hardState).encoded())
        do {
            try FileIO.writeAll(descriptor, bytes, path: path)
            try FileIO.syncFile(descriptor, path: path)
            try FileIO.syncDirectory(walDirectory)
        } catch {
            close(descriptor)
            throw error
        }
        if activeDescriptor >= 0 { close(activeDescriptor) }
        activeDescriptor = descriptor
        activeBytes = bytes.count
        segments.append(Segment(sequence: sequence, path: path, highestEntryIndex: 0))
    }

    private func writeSnapshotFile(_ snapshot: Snapshot) throws(StorageError) {
        let path = snapshotDirectory + "/" + SnapshotFile.fileName(for: snapshot.metadata)
        try FileIO.writeAtomically(SnapshotFile.encode(snapshot), to: path, directory: snapshotDirectory)
        snapshotIndex = max(snapshotIndex, snapshot.metadata.index)
    }

    /// Deletes older snapshots, and the oldest segments whose entries all sit at or below `index`
    /// (never the active one). The snapshot at `index` is durable before this runs.
    private func discardBelow(_ index: LogIndex) throws(StorageError) {
        for name in try FileIO.list(snapshotDirectory) {
            guard let fileIndex = SnapshotFile.index(inFileName: name), fileIndex < snapshotIndex else { continue }
            try FileIO.remove(snapshotDirectory + "/" + name)
        }
        try FileIO.syncDirectory(snapshotDirectory)
        while segments.count > 1, segments[0].highestEntryIndex <= index {
            // Oldest first, each deletion durable before the next: a crash leaves a gapless suffix.
            try FileIO.remove(segments[0].path)
            try FileIO.syncDirectory(walDirectory)
            segments.removeFirst()
        }
    }

    // MARK: - Recovery

    private func recover() throws(StorageError) {
        if readOnly {
            _ = try FileIO.list(walDirectory)
            _ = try FileIO.list(snapshotDirectory)
        } else {
            try FileIO.makeDirectory(walDirectory)
            try FileIO.makeDirectory(snapshotDirectory)
        }
        for folder in [walDirectory, snapshotDirectory] where !readOnly {
            for name in try FileIO.list(folder) where name.hasSuffix(".tmp") {
                // A snapshot or file write that never reached its rename: not part of the state.
                try FileIO.remove(folder + "/" + name)
            }
        }

        let snapshot = try loadNewestSnapshot()
        let segmentFiles = try FileIO.list(walDirectory).compactMap { name -> (UInt64, String)? in
            guard name.hasSuffix(".seg"), name.count == 20, let sequence = UInt64(name.prefix(16), radix: 16) else { return nil }
            return (sequence, walDirectory + "/" + name)
        }.sorted { $0.0 < $1.0 }

        var replay = LogReplay()
        for (position, (sequence, path)) in segmentFiles.enumerated() {
            let isLast = position == segmentFiles.count - 1
            let bytes = try FileIO.readAll(path)
            let outcome = try replay.scan(bytes, file: path, sequence: sequence, isLastSegment: isLast)
            if let tornAt = outcome.tornAt {
                tornTail = (path, tornAt, bytes.count - tornAt)
                if readOnly {
                    segments.append(Segment(sequence: sequence, path: path, highestEntryIndex: outcome.highestEntryIndex))
                    continue
                }
                if tornAt < SegmentHeader.size {
                    try FileIO.remove(path)
                    try FileIO.syncDirectory(walDirectory)
                    continue
                }
                try FileIO.truncate(path, to: tornAt)
            }
            segments.append(Segment(sequence: sequence, path: path, highestEntryIndex: outcome.highestEntryIndex))
        }

        guard let snapshot else {
            guard segmentFiles.isEmpty || replay.isOnlyAnInterruptedInitialisation else {
                throw .corrupt(file: segmentFiles[0].1, offset: 0, reason: "the log exists but no snapshot file does (snapshots/ was emptied?)")
            }
            // An initialisation that never reached its snapshot: nothing was ever promised.
            segments = []
            if !readOnly {
                for (_, path) in segmentFiles { try FileIO.remove(path) }
                try FileIO.syncDirectory(walDirectory)
            }
            return
        }

        guard !segments.isEmpty else {
            throw .corrupt(file: walDirectory, offset: 0, reason: "a snapshot exists but the log has no usable segment (wal/ was emptied?)")
        }
        let entries = try replay.entries(after: snapshot.metadata, file: segmentFiles.last?.1 ?? walDirectory)
        hardState = replay.hardState ?? HardState()
        // Records are written entries first, hard state last, and a leader's snapshot before
        // both: a crash can leave entries or a snapshot of a term the durable hard state never
        // reached. The node did hold that term, and it sent nothing in it (that waits for the
        // whole write), so it resumes in that term with no vote.
        let seenTerm = max(entries.last?.term ?? 0, snapshot.metadata.term)
        if seenTerm > hardState.term {
            hardState.term = seenTerm
            hardState.vote = nil
        }
        snapshotIndex = snapshot.metadata.index
        recovered = DurableState(hardState: hardState, snapshot: snapshot, entries: entries)
        if !readOnly { try startSegment() }
    }

    private func loadNewestSnapshot() throws(StorageError) -> Snapshot? {
        let names = try FileIO.list(snapshotDirectory).filter { SnapshotFile.index(inFileName: $0) != nil }
        guard let newest = names.max(by: { (SnapshotFile.index(inFileName: $0) ?? 0) < (SnapshotFile.index(inFileName: $1) ?? 0) }) else {
            return nil
        }
        let path = snapshotDirectory + "/" + newest
        let snapshot = try SnapshotFile.decode(try FileIO.readAll(path), file: path)
        guard SnapshotFile.fileName(for: snapshot.metadata) == newest else {
            throw .corrupt(file: path, offset: 0, reason: "the snapshot inside (index \(snapshot.metadata.index), term \(snapshot.metadata.term)) does not match its file name")
        }
        return snapshot
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
