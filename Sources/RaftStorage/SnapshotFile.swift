import RaftCodec
import RaftCore

/// A snapshot on disk: `PGQ-SNP\n`, format version, metadata, data, and a CRC-32C of all of it.
/// Written to a temporary file, synced and renamed into place, so a crash leaves either the old
/// snapshot or the new one, never half of one.
enum SnapshotFile {
    static let magic: [UInt8] = Array("PGQ-SNP\n".utf8)
    static let currentVersion: UInt32 = 1

    static func fileName(for metadata: SnapshotMetadata) -> String {
        "snap-" + hex(metadata.index) + "-" + hex(metadata.term) + ".snap"
    }

    /// The index encoded in a snapshot file name, for ordering; nil for other files.
    static func index(inFileName name: String) -> LogIndex? {
        guard name.hasPrefix("snap-"), name.hasSuffix(".snap") else { return nil }
        let parts = name.dropFirst(5).dropLast(5).split(separator: "-")
        guard parts.count == 2, parts[0].count == 16 else { return nil }
        return LogIndex(parts[0], radix: 16)
    }

    static func encode(_ snapshot: Snapshot) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64 + snapshot.data.count)
        writer.writeRaw(magic)
        writer.write(currentVersion)
        RaftEncoding.encode(snapshot.metadata, into: &writer)
        writer.writeBytes(snapshot.data)
        writer.write(CRC32C.checksum(writer.bytes))
        return writer.bytes
    }

    static func decode(_ bytes: [UInt8], file: String) throws(StorageError) -> Snapshot {
        guard bytes.count >= magic.count + 8, Array(bytes[0..<magic.count]) == magic else {
            throw .corrupt(file: file, offset: 0, reason: "not a pgquorum snapshot (bad magic or too short)")
        }
        let body = bytes[0..<(bytes.count - 4)]
        var trailer = BinaryReader(Array(bytes[(bytes.count - 4)...]))
        guard let stored = try? trailer.readUInt32(), stored == CRC32C.checksum(body) else {
            throw .corrupt(file: file, offset: bytes.count - 4, reason: "snapshot checksum mismatch")
        }
        var reader = BinaryReader(Array(body), offset: magic.count)
        let version = (try? reader.readUInt32()) ?? 0
        guard version == currentVersion else {
            throw .unsupportedVersion(file: file, version: version, supported: currentVersion)
        }
        let metadata: SnapshotMetadata, data: [UInt8]
        do {
            metadata = try RaftEncoding.decodeSnapshotMetadata(from: &reader)
            data = try reader.readBytes()
        } catch {
            throw .corrupt(file: file, offset: reader.offset, reason: "undecodable snapshot: \(error)")
        }
        guard reader.isAtEnd else {
            throw .corrupt(file: file, offset: reader.offset, reason: "unexpected bytes after the snapshot data")
        }
        return Snapshot(metadata: metadata, data: data)
    }

    static func hex(_ value: UInt64) -> String {
        let digits = String(value, radix: 16)
        return String(repeating: "0", count: max(0, 16 - digits.count)) + digits
    }
}
