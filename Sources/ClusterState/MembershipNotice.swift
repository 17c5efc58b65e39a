import RaftCodec

/// What every agent tells each peer on the peer link (frame type `notice`): its cluster
/// generation and the voters it knows.
///
/// The generation starts at 0 and only a forced recovery after a quorum loss raises it (the
/// survivors shrink the membership to themselves without the lost majority's consent). A node
/// that returns from before that recovery still holds the old membership, in which the lost
/// nodes are a majority: it must not campaign with it. Hearing a higher generation that leaves
/// it out of the voters, it discards its Raft state and rejoins as a new member.
public struct MembershipNotice: Sendable, Equatable {
    public var generation: UInt64
    /// Raft node IDs, ascending.
    public var voters: [UInt64]

    public init(generation: UInt64, voters: [UInt64]) {
        self.generation = generation
        self.voters = voters.sorted()
    }

    /// What a node does on hearing this notice.
    public enum Verdict: Sendable, Equatable {
        /// Nothing new: the same or an older generation, or a sender that does not speak for it.
        case ignore
        /// A newer generation: this node's Raft state is from before the recovery; discard it
        /// and rejoin. (A forced recovery keeps one survivor only, which holds the new
        /// generation itself, so no node of an older generation can be a voter of the newer.)
        case rejoin(generation: UInt64)
    }

    /// The verdict for `node`, whose own generation is `generation`, hearing this notice from
    /// `sender`. Only a voter of the newer generation speaks for it: a node that has just
    /// rejoined and knows no voters yet stays silent about it.
    public func verdict(for node: UInt64, at generation: UInt64, from sender: UInt64) -> Verdict {
        guard self.generation > generation, voters.contains(sender) else { return .ignore }
        return .rejoin(generation: self.generation)
    }
}

public enum MembershipNoticeCodec {
    public static let version: UInt8 = 1
    /// More voters than any cluster has: a larger count is a broken frame.
    static let maximumVoters = 1_024

    public static func encode(_ notice: MembershipNotice) -> [UInt8] {
        var writer = BinaryWriter()
        writer.write(version)
        writer.write(notice.generation)
        writer.write(UInt16(min(notice.voters.count, maximumVoters)))
        for voter in notice.voters.prefix(maximumVoters) { writer.write(voter) }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(CommandCodec.DecodingError) -> MembershipNotice {
        var reader = BinaryReader(bytes)
        do {
            let version = try reader.readUInt8()
            guard version >= 1 else { throw CommandCodec.DecodingError.unsupportedVersion(version) }
            let generation = try reader.readUInt64()
            let count = Int(try reader.readUInt16())
            guard count <= maximumVoters else { throw CommandCodec.DecodingError.malformed("\(count) voters") }
            var voters: [UInt64] = []
            for _ in 0..<count { voters.append(try reader.readUInt64()) }
            return MembershipNotice(generation: generation, voters: voters)
        } catch let error as CommandCodec.DecodingError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
    }
}
