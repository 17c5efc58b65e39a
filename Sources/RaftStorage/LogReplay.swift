import RaftCodec
import RaftCore

/// Replays segment files in order into the log and hard state they describe, telling a torn
/// tail (an unsynced partial write at the very end) from corruption (anything else).
struct LogReplay {
    private(set) var hardState: HardState?
    private var log: [Entry] = []
    /// After a log reset, the index the next entry must have.
    private var resetAt: (index: LogIndex, term: Term)?
    private var sawEntries = false

    struct Outcome {
        var highestEntryIndex: LogIndex = 0
        /// Where the valid records end, when a torn tail follows.
        var tornAt: Int?
    }

    mutating func scan(_ bytes: [UInt8], file: String, sequence: UInt64, isLastSegment: Bool) throws(StorageError) -> Outcome {
        var outcome = Outcome()
        func tornOrCorrupt(_ offset: Int, _ reason: String) throws(StorageError) {
            guard isLastSegment else { throw .corrupt(file: file, offset: offset, reason: reason) }
            outcome.tornAt = offset
        }

        if bytes.count < SegmentHeader.size {
            try tornOrCorrupt(0, "segment is \(bytes.count) bytes, shorter than its header")
            return outcome
        }
        if let problem = SegmentHeader.problem(in: Array(bytes[0..<SegmentHeader.size]), file: file, sequence: sequence) {
            if isLastSegment, bytes.allSatisfy({ $0 == 0 }) {
                outcome.tornAt = 0
                return outcome
            }
            throw problem
        }

        var offset = SegmentHeader.size
        while offset < bytes.count {
            let available = bytes.count - offset
            if available < WALRecord.headerSize {
                try tornOrCorrupt(offset, "\(available) stray bytes after the last record")
                return outcome
            }
            var header = BinaryReader(bytes, offset: offset)
            let length: UInt32, payloadCRC: UInt32, headerCRC: UInt32
            do {
                length = try header.readUInt32()
                payloadCRC = try header.readUInt32()
                headerCRC = try header.readUInt32()
            } catch {
                throw .corrupt(file: file, offset: offset, reason: "unreadable record header")
            }
            if headerCRC != CRC32C.checksum(bytes[offset..<(offset + 8)]) {
                // Never-written space reads as zeros; anything else is damage.
                if isLastSegment, bytes[offset...].allSatisfy({ $0 == 0 }) {
                    outcome.tornAt = offset
                    return outcome
                }
                throw .corrupt(file: file, offset: offset, reason: "record header checksum mismatch")
            }
            guard length > 0, Int(length) <= WALRecord.maxPayload else {
                throw .corrupt(file: file, offset: offset, reason: "impossible record length \(length)")
            }
            let end = offset + WALRecord.headerSize + Int(length)
            if end > bytes.count {
                try tornOrCorrupt(offset, "record of \(length) bytes runs past the end of the file")
                return outcome
            }
            let payload = Array(bytes[(offset + WALRecord.headerSize)..<end])
            guard CRC32C.checksum(payload) == payloadCRC else {
                throw .corrupt(file: file, offset: offset, reason: "record checksum mismatch")
            }
            let record: WALRecord
            do {
                record = try WALRecord.decode(payload: payload)
            } catch {
                throw .corrupt(file: file, offset: offset, reason: "undecodable record: \(error)")
            }
            try apply(record, file: file, offset: offset)
            if case .entry(let entry) = record { outcome.highestEntryIndex = max(outcome.highestEntryIndex, entry.index) }
            offset = end
        }
        return outcome
    }

    private mutating func apply(_ record: WALRecord, file: String, offset: Int) throws(StorageError) {
        switch record {
        case .hardState(let state):
            hardState = state
        case .logReset(let index, let term):
            log = []
            resetAt = (index, term)
        case .entry(let entry):
            sawEntries = true
            if let first = log.first, let last = log.last {
                guard entry.index <= last.index + 1 else {
                    throw .corrupt(file: file, offset: offset,
                                   reason: "entry \(entry.index) leaves a gap after the log \(first.index)…\(last.index)")
                }
                // An overwrite replaces everything from its index on. Below the first replayed
                // entry it overwrote entries of segments that compaction has since deleted.
                log.removeLast(Int(last.index + 1 - max(entry.index, first.index)))
            } else if let reset = resetAt, entry.index != reset.index + 1 {
                throw .corrupt(file: file, offset: offset,
                               reason: "entry \(entry.index) does not follow the snapshot at \(reset.index)")
            }
            if let previous = log.last, previous.term > entry.term {
                throw .corrupt(file: file, offset: offset,
                               reason: "entry \(entry.index) has term \(entry.term), below its predecessor's \(previous.term)")
            }
            log.append(entry)
        }
    }

    /// Whether the replayed segments hold nothing but empty hard states: what an `initialize`
    /// interrupted before its snapshot file was renamed into place leaves behind.
    var isOnlyAnInterruptedInitialisation: Bool {
        log.isEmpty && resetAt == nil && (hardState ?? HardState()) == HardState() && !sawEntries
    }

    /// The entries that follow `snapshot`. Entries the snapshot covers are dropped; if the log
    /// disagrees with the snapshot at its index, the log diverged from the leader's and only the
    /// snapshot counts.
    func entries(after snapshot: SnapshotMetadata, file: String) throws(StorageError) -> [Entry] {
        if let atSnapshot = log.first(where: { $0.index == snapshot.index }), atSnapshot.term != snapshot.term {
            return []
        }
        let after = log.filter { $0.index > snapshot.index }
        if let first = after.first, first.index != snapshot.index + 1 {
            throw .corrupt(file: file, offset: 0,
                           reason: "the log resumes at entry \(first.index) but the snapshot ends at \(snapshot.index): entries are missing")
        }
        return after
    }
}
