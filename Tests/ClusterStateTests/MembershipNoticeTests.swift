import ClusterState
import Testing

@Suite struct MembershipNoticeTests {
    @Test func aNewerGenerationWithoutTheNodeMeansRejoin() {
        let notice = MembershipNotice(generation: 2, voters: [3, 4])
        #expect(notice.verdict(for: 1, at: 1, from: 3) == .rejoin(generation: 2))
        // Listed or not: a node of an older generation holds state from before the recovery.
        #expect(notice.verdict(for: 4, at: 1, from: 3) == .rejoin(generation: 2))
        #expect(notice.verdict(for: 1, at: 2, from: 3) == .ignore)
        #expect(notice.verdict(for: 1, at: 5, from: 3) == .ignore)
    }

    @Test func onlyAVoterOfTheNewerGenerationSpeaksForIt() {
        // Node 5 has just rejoined: generation 2, no voters known yet.
        #expect(MembershipNotice(generation: 2, voters: []).verdict(for: 4, at: 1, from: 5) == .ignore)
        #expect(MembershipNotice(generation: 2, voters: [3]).verdict(for: 4, at: 1, from: 5) == .ignore)
    }

    @Test func roundTripsAndSortsVoters() throws {
        let notice = MembershipNotice(generation: 7, voters: [9, 2, 5])
        #expect(notice.voters == [2, 5, 9])
        #expect(try MembershipNoticeCodec.decode(MembershipNoticeCodec.encode(notice)) == notice)
        #expect(try MembershipNoticeCodec.decode(MembershipNoticeCodec.encode(MembershipNotice(generation: 0, voters: []))).voters.isEmpty)
    }

    @Test func brokenPayloadsAreErrors() {
        let bytes = MembershipNoticeCodec.encode(MembershipNotice(generation: 1, voters: [1, 2]))
        #expect(throws: CommandCodec.DecodingError.self) { try MembershipNoticeCodec.decode(Array(bytes.dropLast())) }
        #expect(throws: CommandCodec.DecodingError.self) { try MembershipNoticeCodec.decode([]) }
        #expect(throws: CommandCodec.DecodingError.self) { try MembershipNoticeCodec.decode([0] + bytes.dropFirst()) }
        // A voter count beyond any cluster.
        #expect(throws: CommandCodec.DecodingError.self) { try MembershipNoticeCodec.decode([1, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF]) }
    }
}
