import Testing
import RaftCore
@testable import RaftCodec

@Suite struct FrameDecoderTests {
    @Test func framesSurviveAnySplitOfTheStream() throws {
        let frames = [Frame(type: .raft, payload: [1, 2, 3]), Frame(type: .ping, payload: []),
                      Frame(type: .pong, payload: Array(repeating: 7, count: 300))]
        let stream = frames.flatMap { $0.encoded() }
        for chunk in [1, 2, 3, 7, 64, stream.count] {
            var decoder = FrameDecoder()
            var out: [Frame] = []
            var offset = 0
            while offset < stream.count {
                decoder.append(Array(stream[offset..<min(stream.count, offset + chunk)]))
                offset += chunk
                while let frame = try decoder.next() { out.append(frame) }
            }
            #expect(out == frames, "chunk \(chunk)")
            #expect(decoder.buffered == 0)
        }
    }

    @Test func oversizedFrameIsRefusedBeforeItIsBuffered() {
        var decoder = FrameDecoder(maximumLength: 1024)
        decoder.append([0x01, 0x10, 0x00, 0x00])
        #expect(throws: FrameError.tooLarge(length: 4097, maximum: 1024)) { try decoder.next() }
    }

    @Test func unknownTypeAndOldVersionAreNamed() {
        var decoder = FrameDecoder()
        decoder.append([3, 0, 0, 0, 1, 0, 99])
        #expect(throws: FrameError.unknownType(99)) { try decoder.next() }
        var old = FrameDecoder()
        old.append([3, 0, 0, 0, 0, 0, 1])
        #expect(throws: FrameError.unsupportedVersion(0)) { try old.next() }
    }

    @Test func newerVersionFramesAreAccepted() throws {
        var decoder = FrameDecoder()
        decoder.append(Frame(type: .ping, payload: [1], version: Frame.version + 1).encoded())
        #expect(try decoder.next()?.version == Frame.version + 1)
    }

    /// A newer peer's new frame types are skipped; the frames around them still come out.
    @Test func unknownTypesFromNewerVersionsAreSkipped() throws {
        var decoder = FrameDecoder()
        let newer = Frame.version + 1
        decoder.append([5, 0, 0, 0, UInt8(newer & 0xff), UInt8(newer >> 8), 99, 7, 7] + Frame(type: .ping, payload: [1]).encoded())
        #expect(try decoder.next() == Frame(type: .ping, payload: [1]))
        #expect(try decoder.next() == nil)
        #expect(decoder.buffered == 0)
    }

    /// A million skipped frames in one buffer: skipped in a loop (recursion would overflow the
    /// stack long before).
    @Test func manySkippedFramesDoNotGrowTheStack() throws {
        var decoder = FrameDecoder()
        let newer = Frame.version + 1
        let skipped: [UInt8] = [3, 0, 0, 0, UInt8(newer & 0xff), UInt8(newer >> 8), 99]
        var stream: [UInt8] = []
        stream.reserveCapacity(skipped.count * 1_000_000 + 16)
        for _ in 0..<1_000_000 { stream += skipped }
        decoder.append(stream + Frame(type: .ping, payload: [1]).encoded())
        #expect(try decoder.next() == Frame(type: .ping, payload: [1]))
        #expect(decoder.buffered == 0)
    }

    /// 100,000 random and mutated streams through the decoder and the message codec: frames
    /// come out or a clean error does; nothing crashes, nothing is buffered past the limit.
    @Test func decoderSurvivesAHundredThousandHostileStreams() {
        var random = SplitMix64(seed: 7)
        let message = MessageCodec.encode(Message(from: 1, to: 2, term: 3, kind: .heartbeat(commit: 4, round: 5)))
        let valid = Frame(type: .raft, payload: message).encoded() + Frame(type: .ping, payload: [9]).encoded()
        var frames = 0, errors = 0
        for round in 0..<100_000 {
            var bytes: [UInt8]
            if round % 2 == 0 {
                bytes = (0..<Int(random.next() % 48)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
            } else {
                bytes = valid
                for _ in 0..<(1 + Int(random.next() % 3)) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            }
            var decoder = FrameDecoder(maximumLength: 4096)
            decoder.append(bytes)
            do {
                while let frame = try decoder.next() {
                    frames += 1
                    if frame.type == .raft { _ = try? MessageCodec.decode(frame.payload) }
                }
            } catch {
                errors += 1
            }
            #expect(decoder.buffered <= bytes.count)
        }
        #expect(frames > 0 && errors > 0)
    }
}
