import RaftCore

/// The binary form of a Raft `Message`, as carried in a transport frame.
///
/// Body: `from u64, to u64, term u64, kind u8`, then the kind's fields. Versioning rule: a newer
/// wire version may only append fields to a kind's body, and a reader ignores bytes it does not
/// know after the fields of its own version, so adjacent versions interoperate. A kind a reader
/// does not know is an error naming the tag.
public enum MessageCodec {
    public static func encode(_ message: Message) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64)
        writer.write(message.from.rawValue)
        writer.write(message.to.rawValue)
        writer.write(message.term)
        switch message.kind {
        case .preVoteRequest(let lastIndex, let lastTerm):
            writer.write(UInt8(1)); writer.write(lastIndex); writer.write(lastTerm)
        case .preVoteResponse(let granted):
            writer.write(UInt8(2)); writer.write(UInt8(granted ? 1 : 0))
        case .voteRequest(let lastIndex, let lastTerm, let transfer):
            writer.write(UInt8(3)); writer.write(lastIndex); writer.write(lastTerm); writer.write(UInt8(transfer ? 1 : 0))
        case .voteResponse(let granted):
            writer.write(UInt8(4)); writer.write(UInt8(granted ? 1 : 0))
        case .append(let prevIndex, let prevTerm, let entries, let commit, let round):
            writer.write(UInt8(5)); writer.write(prevIndex); writer.write(prevTerm); writer.write(commit); writer.write(round)
            writer.write(UInt32(entries.count))
            for entry in entries { RaftEncoding.encode(entry, into: &writer) }
        case .appendResponse(let result, let round):
            writer.write(UInt8(6)); writer.write(round)
            switch result {
            case .accepted(let match):
                writer.write(UInt8(0)); writer.write(match)
            case .rejected(let prevIndex, let hint):
                writer.write(UInt8(1)); writer.write(prevIndex)
                writer.write(UInt8(hint.conflictTerm == nil ? 0 : 1)); writer.write(hint.conflictTerm ?? 0)
                writer.write(hint.firstIndex)
            }
        case .heartbeat(let commit, let round):
            writer.write(UInt8(7)); writer.write(commit); writer.write(round)
        case .heartbeatResponse(let round):
            writer.write(UInt8(8)); writer.write(round)
        case .installSnapshot(let snapshot, let round):
            writer.write(UInt8(9)); writer.write(round)
            RaftEncoding.encode(snapshot.metadata, into: &writer)
            writer.writeBytes(snapshot.data)
        case .timeoutNow:
            writer.write(UInt8(10))
        }
        return writer.bytes
    }

    /// Entries in one append; more is a corrupt or hostile frame.
    static let maxEntries = 1 << 20

    public static func decode(_ bytes: [UInt8]) throws(BinaryReader.Failure) -> Message {
        var reader = BinaryReader(bytes)
        let from = NodeID(try reader.readUInt64())
        let to = NodeID(try reader.readUInt64())
        let term = try reader.readUInt64()
        let kind: Message.Kind
        switch try reader.readUInt8() {
        case 1: kind = .preVoteRequest(lastIndex: try reader.readUInt64(), lastTerm: try reader.readUInt64())
        case 2: kind = .preVoteResponse(granted: try readBool(&reader))
        case 3:
            kind = .voteRequest(lastIndex: try reader.readUInt64(), lastTerm: try reader.readUInt64(),
                                leadershipTransfer: try readBool(&reader))
        case 4: kind = .voteResponse(granted: try readBool(&reader))
        case 5:
            let prevIndex = try reader.readUInt64(), prevTerm = try reader.readUInt64()
            let commit = try reader.readUInt64(), round = try reader.readUInt64()
            let count = Int(try reader.readUInt32())
            guard count <= maxEntries else { throw .invalid("an append of \(count) entries exceeds \(maxEntries)") }
            var entries: [Entry] = []
            entries.reserveCapacity(min(count, 1024))
            for _ in 0..<count { entries.append(try RaftEncoding.decodeEntry(from: &reader)) }
            kind = .append(prevIndex: prevIndex, prevTerm: prevTerm, entries: entries, commit: commit, round: round)
        case 6:
            let round = try reader.readUInt64()
            switch try reader.readUInt8() {
            case 0: kind = .appendResponse(.accepted(matchIndex: try reader.readUInt64()), round: round)
            case 1:
                let prevIndex = try reader.readUInt64()
                let hasTerm = try readBool(&reader)
                let conflictTerm = try reader.readUInt64()
                let firstIndex = try reader.readUInt64()
                let hint = Message.ConflictHint(conflictTerm: hasTerm ? conflictTerm : nil, firstIndex: firstIndex)
                kind = .appendResponse(.rejected(prevIndex: prevIndex, hint: hint), round: round)
            case let tag: throw .invalid("unknown append result tag \(tag)")
            }
        case 7: kind = .heartbeat(commit: try reader.readUInt64(), round: try reader.readUInt64())
        case 8: kind = .heartbeatResponse(round: try reader.readUInt64())
        case 9:
            let round = try reader.readUInt64()
            let metadata = try RaftEncoding.decodeSnapshotMetadata(from: &reader)
            kind = .installSnapshot(Snapshot(metadata: metadata, data: try reader.readBytes()), round: round)
        case 10: kind = .timeoutNow
        case let tag: throw .invalid("unknown message type \(tag)")
        }
        // Bytes after the known fields come from a newer version: ignored by design.
        return Message(from: from, to: to, term: term, kind: kind)
    }

    private static func readBool(_ reader: inout BinaryReader) throws(BinaryReader.Failure) -> Bool {
        switch try reader.readUInt8() {
        case 0: return false
        case 1: return true
        case let value: throw .invalid("bad boolean \(value)")
        }
    }
}
