/// The unit of the peer transport, after TLS: `length: u32` (of everything after it), then
/// `version: u16`, `type: u8`, and the payload. Big frames are refused before they are buffered.
public struct Frame: Sendable, Equatable {
    public enum FrameType: UInt8, Sendable {
        /// A Raft `Message` (payload: `MessageCodec`).
        case raft = 1
        /// Round-trip probe: the payload (an opaque timestamp) comes back in a `pong`.
        case ping = 2
        case pong = 3
        /// An agent-level report (payload opaque to the transport: the agent's PostgreSQL health,
        /// `MemberReportCodec`). Since wire version 2; sent only to peers that speak it.
        case report = 4
        /// The sender's membership notice (payload opaque to the transport: the agent's cluster
        /// generation and voters, `MembershipNoticeCodec`). Since wire version 3; older readers
        /// skip it (a frame type newer than their version).
        case notice = 5
    }

    /// The wire version this build writes. Readers accept `minimumVersion...version`: a newer
    /// peer may append fields (see `MessageCodec`), and a version below the minimum is refused.
    /// Version 2 added `report` frames, version 3 `notice` frames.
    public static let version: UInt16 = 3
    public static let minimumVersion: UInt16 = 1
    /// Bytes after the length field beyond which a frame is refused (snapshots ride in frames).
    public static let defaultMaximumLength = 64 << 20

    public var version: UInt16
    public var type: FrameType
    public var payload: [UInt8]

    public init(type: FrameType, payload: [UInt8], version: UInt16 = Frame.version) {
        self.version = version
        self.type = type
        self.payload = payload
    }

    public func encoded() -> [UInt8] {
        var writer = BinaryWriter(capacity: 7 + payload.count)
        writer.write(UInt32(3 + payload.count))
        writer.write(version)
        writer.write(type.rawValue)
        writer.writeRaw(payload)
        return writer.bytes
    }
}

/// Why a byte stream is not acceptable frames. Each ends the connection with a logged reason.
public enum FrameError: Error, Equatable, Sendable, CustomStringConvertible {
    case tooLarge(length: Int, maximum: Int)
    case tooShort(length: Int)
    case unsupportedVersion(UInt16)
    case unknownType(UInt8)

    public var description: String {
        switch self {
        case .tooLarge(let length, let maximum): "frame of \(length) bytes exceeds the limit of \(maximum)"
        case .tooShort(let length): "frame of \(length) bytes is shorter than its 3-byte header"
        case .unsupportedVersion(let version):
            "wire version \(version) is not supported (this agent speaks \(Frame.minimumVersion)…\(Frame.version)); upgrade one side"
        case .unknownType(let type): "unknown frame type \(type)"
        }
    }
}

/// Incremental frame parsing: feed bytes as they arrive, take whole frames out. Pure, so it can
/// be fuzzed without a network; the transport wraps it.
public struct FrameDecoder: Sendable {
    private var buffer: [UInt8] = []
    private var start = 0
    public let maximumLength: Int

    public init(maximumLength: Int = Frame.defaultMaximumLength) { self.maximumLength = maximumLength }

    /// Bytes received but not yet part of a whole frame.
    public var buffered: Int { buffer.count - start }

    public mutating func append(_ bytes: [UInt8]) {
        if start > 0, start >= buffer.count / 2 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    /// The next whole frame, nil when more bytes are needed. After an error the stream is
    /// unusable: the connection must be closed.
    public mutating func next() throws(FrameError) -> Frame? {
        // A loop, not recursion: a stream of many skipped frames must not grow the stack.
        while buffered >= 4 {
            let length = (0..<4).reduce(0) { $0 | Int(buffer[start + $1]) << (8 * $1) }
            guard length <= maximumLength else { throw .tooLarge(length: length, maximum: maximumLength) }
            guard length >= 3 else { throw .tooShort(length: length) }
            guard buffered >= 4 + length else { return nil }
            let version = UInt16(buffer[start + 4]) | UInt16(buffer[start + 5]) << 8
            guard version >= Frame.minimumVersion else { throw .unsupportedVersion(version) }
            guard let type = Frame.FrameType(rawValue: buffer[start + 6]) else {
                // A newer peer may add frame types; they are skipped. From a peer of our own
                // version or older, an unknown type is a broken stream.
                guard version > Frame.version else { throw .unknownType(buffer[start + 6]) }
                start += 4 + length
                continue
            }
            let payload = Array(buffer[(start + 7)..<(start + 4 + length)])
            start += 4 + length
            return Frame(type: type, payload: payload, version: version)
        }
        return nil
    }
}
