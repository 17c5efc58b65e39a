import Testing
import RaftCore
@testable import RaftCodec

@Suite struct RaftEncodingTests {
    static let samples: [Entry] = [
        Entry(term: 1, index: 1, payload: .noop),
        Entry(term: 7, index: 42, payload: .application([0, 1, 2, 255])),
        Entry(term: 9, index: 43, payload: .application([])),
        Entry(term: 9, index: 44, payload: .membership(.addLearner(5), result: Configuration(voters: [1, 2, 3], learners: [5]))),
        Entry(term: 9, index: 45, payload: .membership(.remove(2), result: Configuration(voters: [1, 3]))),
    ]

    @Test(arguments: samples) func entryRoundTrips(_ entry: Entry) throws {
        var writer = BinaryWriter()
        RaftEncoding.encode(entry, into: &writer)
        var reader = BinaryReader(writer.bytes)
        #expect(try RaftEncoding.decodeEntry(from: &reader) == entry)
        #expect(reader.isAtEnd)
    }

    @Test func hardStateRoundTrips() throws {
        for state in [HardState(), HardState(term: 5, vote: 3, commit: 99), HardState(term: .max, vote: nil, commit: 1)] {
            var writer = BinaryWriter()
            RaftEncoding.encode(state, into: &writer)
            var reader = BinaryReader(writer.bytes)
            #expect(try RaftEncoding.decodeHardState(from: &reader) == state)
        }
    }

    @Test func everyTruncationOfAnEntryIsATruncationError() {
        var writer = BinaryWriter()
        RaftEncoding.encode(Self.samples[3], into: &writer)
        for length in 0..<writer.bytes.count {
            var reader = BinaryReader(Array(writer.bytes.prefix(length)))
            #expect(throws: BinaryReader.Failure.self) { try RaftEncoding.decodeEntry(from: &reader) }
        }
    }

    @Test func unknownTagsAreRejected() {
        var reader = BinaryReader([1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9])
        #expect(throws: BinaryReader.Failure.invalid("unknown entry payload tag 9")) {
            try RaftEncoding.decodeEntry(from: &reader)
        }
    }

    @Test func hugeCountsAreRejectedBeforeAllocating() {
        var reader = BinaryReader([0xFF, 0xFF, 0xFF, 0x7F])
        #expect(throws: BinaryReader.Failure.self) { try RaftEncoding.decodeConfiguration(from: &reader) }
    }

    /// Random and mutated bytes never crash the decoder: they decode or fail cleanly.
    @Test func decoderSurvivesGarbage() {
        var random = SplitMix64(seed: 99)
        var valid = BinaryWriter()
        for entry in Self.samples { RaftEncoding.encode(entry, into: &valid) }
        for round in 0..<20_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(random.next() % 64)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = valid.bytes
                for _ in 0..<(1 + Int(random.next() % 4)) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            var reader = BinaryReader(bytes)
            while !reader.isAtEnd, (try? RaftEncoding.decodeEntry(from: &reader)) != nil {}
        }
    }

    @Test func crc32cMatchesTheStandardCheckValue() {
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        let whole = CRC32C.checksum(Array("hello world".utf8))
        let continued = CRC32C.checksum(Array(" world".utf8), continuing: CRC32C.checksum(Array("hello".utf8)))
        #expect(whole == continued)
    }
}
