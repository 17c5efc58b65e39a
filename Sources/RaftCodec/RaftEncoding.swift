import RaftCore

/// The binary form of the Raft core's values, shared by storage and (later) the transport.
/// Every enum case has a fixed tag; new cases get new tags, so old readers reject them clearly.
public enum RaftEncoding {
    public static func encode(_ entry: Entry, into writer: inout BinaryWriter) {
        writer.write(entry.term)
        writer.write(entry.index)
        switch entry.payload {
        case .noop:
            writer.write(UInt8(0))
        case .application(let bytes):
            writer.write(UInt8(1))
            writer.writeBytes(bytes)
        case .membership(let change, let result):
            writer.write(UInt8(2))
            encode(change, into: &writer)
            encode(result, into: &writer)
        }
    }

    public static func decodeEntry(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> Entry {
        let term = try reader.readUInt64()
        let index = try reader.readUInt64()
        let payload: EntryPayload
        switch try reader.readUInt8() {
        case 0: payload = .noop
        case 1: payload = .application(try reader.readBytes())
        case 2:
            let change = try decodeChange(from: &reader)
            payload = .membership(change, result: try decodeConfiguration(from: &reader))
        case let tag: throw .invalid("unknown entry payload tag \(tag)")
        }
        return Entry(term: term, index: index, payload: payload)
    }

    public static func encode(_ change: MembershipChange, into writer: inout BinaryWriter) {
        switch change {
        case .addVoter(let id): writer.write(UInt8(0)); writer.write(id.rawValue)
        case .addLearner(let id): writer.write(UInt8(1)); writer.write(id.rawValue)
        case .remove(let id): writer.write(UInt8(2)); writer.write(id.rawValue)
        }
    }

    public static func decodeChange(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> MembershipChange {
        let tag = try reader.readUInt8()
        let node = NodeID(try reader.readUInt64())
        switch tag {
        case 0: return .addVoter(node)
        case 1: return .addLearner(node)
        case 2: return .remove(node)
        default: throw .invalid("unknown membership change tag \(tag)")
        }
    }

    public static func encode(_ configuration: Configuration, into writer: inout BinaryWriter) {
        for group in [configuration.voters, configuration.learners] {
            let sorted = group.sorted()
            writer.write(UInt32(sorted.count))
            for id in sorted { writer.write(id.rawValue) }
        }
    }

    /// Membership is small; a count beyond this is a corrupt or hostile input.
    static let maxMembers = 1_000

    public static func decodeConfiguration(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> Configuration {
        var groups: [Set<NodeID>] = []
        for _ in 0..<2 {
            let count = Int(try reader.readUInt32())
            guard count <= maxMembers else { throw .invalid("a configuration of \(count) members exceeds \(maxMembers)") }
            var group: Set<NodeID> = []
            for _ in 0..<count { group.insert(NodeID(try reader.readUInt64())) }
            groups.append(group)
        }
        return Configuration(voters: groups[0], learners: groups[1])
    }

    public static func encode(_ state: HardState, into writer: inout BinaryWriter) {
        writer.write(state.term)
        writer.write(state.vote.map { $0.rawValue } ?? 0)
        writer.write(UInt8(state.vote == nil ? 0 : 1))
        writer.write(state.commit)
        // Appended field, written only when set, so that the records of a node that was never
        // wiped read the same in older versions.
        if state.voteFloorIndex > 0 {
            writer.write(state.voteFloorIndex)
            writer.write(state.voteFloorTerm)
        }
    }

    public static func decodeHardState(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> HardState {
        let term = try reader.readUInt64()
        let vote = try reader.readUInt64()
        let hasVote = try reader.readUInt8()
        guard hasVote <= 1 else { throw .invalid("bad vote flag \(hasVote)") }
        let commit = try reader.readUInt64()
        var floor: (index: LogIndex, term: Term) = (0, 0)
        if !reader.isAtEnd { floor = (try reader.readUInt64(), try reader.readUInt64()) }
        return HardState(term: term, vote: hasVote == 1 ? NodeID(vote) : nil, commit: commit,
                         voteFloorIndex: floor.index, voteFloorTerm: floor.term)
    }

    public static func encode(_ metadata: SnapshotMetadata, into writer: inout BinaryWriter) {
        writer.write(metadata.index)
        writer.write(metadata.term)
        encode(metadata.configuration, into: &writer)
    }

    public static func decodeSnapshotMetadata(from reader: inout BinaryReader) throws(BinaryReader.Failure) -> SnapshotMetadata {
        let index = try reader.readUInt64()
        let term = try reader.readUInt64()
        return SnapshotMetadata(index: index, term: term, configuration: try decodeConfiguration(from: &reader))
    }
}
