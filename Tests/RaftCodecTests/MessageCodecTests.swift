import Testing
import RaftCore
@testable import RaftCodec

@Suite struct MessageCodecTests {
    static let configuration = Configuration(voters: [1, 2, 3], learners: [4])
    static let samples: [Message] = [
        Message(from: 1, to: 2, term: 5, kind: .preVoteRequest(lastIndex: 10, lastTerm: 4)),
        Message(from: 2, to: 1, term: 6, kind: .preVoteResponse(granted: true)),
        Message(from: 1, to: 3, term: 6, kind: .voteRequest(lastIndex: 10, lastTerm: 4, leadershipTransfer: true)),
        Message(from: 3, to: 1, term: 6, kind: .voteResponse(granted: false)),
        Message(from: 1, to: 2, term: 6, kind: .append(prevIndex: 9, prevTerm: 4, entries: [
            Entry(term: 6, index: 10, payload: .noop),
            Entry(term: 6, index: 11, payload: .application([1, 2, 3])),
            Entry(term: 6, index: 12, payload: .membership(.addLearner(4), result: configuration)),
        ], commit: 9, round: 77)),
        Message(from: 2, to: 1, term: 6, kind: .appendResponse(.accepted(matchIndex: 12), round: 77)),
        Message(from: 2, to: 1, term: 6, kind: .appendResponse(.rejected(prevIndex: 9, hint: .init(conflictTerm: 3, firstIndex: 7)), round: 78)),
        Message(from: 2, to: 1, term: 6, kind: .appendResponse(.rejected(prevIndex: 9, hint: .init(conflictTerm: nil, firstIndex: 5)), round: 78)),
        Message(from: 1, to: 2, term: 6, kind: .heartbeat(commit: 12, round: 79)),
        Message(from: 2, to: 1, term: 6, kind: .heartbeatResponse(round: 79)),
        Message(from: 1, to: 4, term: 6, kind: .installSnapshot(Snapshot(metadata: .init(index: 9, term: 4, configuration: configuration), data: [9, 9]), round: 80)),
        Message(from: 1, to: 2, term: 6, kind: .timeoutNow),
    ]

    @Test(arguments: samples) func roundTrips(_ message: Message) throws {
        #expect(try MessageCodec.decode(MessageCodec.encode(message)) == message)
    }

    @Test func fieldsAppendedByANewerVersionAreIgnored() throws {
        let message = Self.samples[0]
        #expect(try MessageCodec.decode(MessageCodec.encode(message) + [1, 2, 3, 4]) == message)
    }

    @Test func unknownMessageTypeIsNamed() {
        var bytes = MessageCodec.encode(Self.samples[11])
        bytes[24] = 200
        #expect(throws: BinaryReader.Failure.invalid("unknown message type 200")) { try MessageCodec.decode(bytes) }
    }

    /// 100,000 random and mutated bodies: each decodes or fails cleanly; none crashes or hangs.
    @Test func decoderSurvivesAHundredThousandHostileBodies() {
        var random = SplitMix64(seed: 2026)
        let valid = Self.samples.map(MessageCodec.encode)
        var decoded = 0
        for round in 0..<100_000 {
            var bytes: [UInt8]
            switch round % 3 {
            case 0:
                bytes = (0..<Int(random.next() % 96)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            case 1:
                bytes = valid[Int(random.next() % UInt64(valid.count))]
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            default:
                bytes = Array(valid[Int(random.next() % UInt64(valid.count))].prefix(Int(random.next() % 64)))
            }
            if (try? MessageCodec.decode(bytes)) != nil { decoded += 1 }
        }
        #expect(decoded < 100_000)
    }
}
