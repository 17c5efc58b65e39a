import RaftCodec
import RaftCore

/// One record of a write-ahead-log segment.
///
/// On disk: `length: u32`, `payloadCRC: u32`, `headerCRC: u32` (CRC-32C of the first eight
/// bytes), then `length` bytes of payload: a type byte and the encoded body. The header has its
/// own checksum so that a damaged length is reported as corruption instead of being mistaken for
/// a record that runs past the end of the file (a torn write).
enum WALRecord: Equatable {
    /// A log entry. An entry whose index is at or below the last one replayed replaces it and
    /// everything after it (the log is append-only on disk; overwrites are new records).
    case entry(Entry)
    /// The node's term, vote and commit index; the last one replayed wins.
    case hardState(HardState)
    /// A snapshot from the leader replaced the whole log: entries restart after `index`.
    case logReset(index: LogIndex, term: Term)

    static let headerSize = 12
    /// A record this large is a corrupt length, not a real record.
    static let maxPayload = 64 << 20

    func encoded() throws(StorageError) -> [UInt8] {
        var body = BinaryWriter(capacity: 64)
        switch self {
        case .entry(let entry):
            body.write(UInt8(1))
            RaftEncoding.encode(entry, into: &body)
        case .hardState(let state):
            body.write(UInt8(2))
            RaftEncoding.encode(state, into: &body)
        case .logReset(let index, let term):
            body.write(UInt8(3))
            body.write(index)
            body.write(term)
        }
        guard body.bytes.count <= Self.maxPayload else {
            throw .recordTooLarge(bytes: body.bytes.count, limit: Self.maxPayload)
        }
        var header = BinaryWriter(capacity: Self.headerSize + body.bytes.count)
        header.write(UInt32(body.bytes.count))
        header.write(CRC32C.checksum(body.bytes))
        header.write(CRC32C.checksum(header.bytes))
        header.writeRaw(body.bytes)
        return header.bytes
    }

    static func decode(payload: [UInt8]) throws(BinaryReader.Failure) -> WALRecord {
        var reader = BinaryReader(payload)
        let record: WALRecord
        switch try reader.readUInt8() {
        case 1: record = .entry(try RaftEncoding.decodeEntry(from: &reader))
        case 2: record = .hardState(try RaftEncoding.decodeHardState(from: &reader))
        case 3: record = .logReset(index: try reader.readUInt64(), term: try reader.readUInt64())
        case let tag: throw .invalid("unknown record type \(tag)")
        }
        guard reader.isAtEnd else { throw .invalid("\(reader.remaining) unexpected bytes after the record") }
        return record
    }
}

/// The fixed header at the start of every segment file.
struct SegmentHeader: Equatable {
    static let magic: [UInt8] = Array("PGQ-WAL\n".utf8)
    static let currentVersion: UInt32 = 1
    static let size = 32

    var version: UInt32 = currentVersion
    var sequence: UInt64

    func encoded() -> [UInt8] {
        var writer = BinaryWriter(capacity: Self.size)
        writer.writeRaw(Self.magic)
        writer.write(version)
        writer.write(UInt32(0))
        writer.write(sequence)
        writer.write(CRC32C.checksum(writer.bytes))
        writer.write(UInt32(0))
        return writer.bytes
    }

    /// The error that makes `bytes` unusable as the header of segment `sequence`, if any.
    static func problem(in bytes: [UInt8], file: String, sequence: UInt64) -> StorageError? {
        func corrupt(_ reason: String) -> StorageError { .corrupt(file: file, offset: 0, reason: reason) }
        guard bytes.count >= size else { return corrupt("segment header is \(bytes.count) bytes, expected \(size)") }
        guard Array(bytes[0..<8]) == magic else { return corrupt("not a pgquorum WAL segment (bad magic)") }
        guard CRC32C.checksum(bytes[0..<24]) == read32(bytes, 24) else { return corrupt("segment header checksum mismatch") }
        let version = read32(bytes, 8)
        guard version == currentVersion else {
            return .unsupportedVersion(file: file, version: version, supported: currentVersion)
        }
        let stored = (0..<8).reduce(UInt64(0)) { $0 | UInt64(bytes[16 + $1]) << (8 * UInt64($1)) }
        guard stored == sequence else { return corrupt("the header says segment \(stored), the file name \(sequence)") }
        return nil
    }

    private static func read32(_ bytes: [UInt8], _ at: Int) -> UInt32 {
        (0..<4).reduce(UInt32(0)) { $0 | UInt32(bytes[at + $1]) << (8 * UInt32($1)) }
    }
}
