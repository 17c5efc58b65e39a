import RaftCodec

/// The bytes of a `ClusterState.Command` inside a Raft log entry: a version byte, a kind byte,
/// then the fields. A newer agent may append fields (readers ignore trailing bytes); an unknown
/// version or kind is refused with a clear error rather than guessed at.
public enum CommandCodec {
    public static let version: UInt8 = 1

    public enum DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        case unsupportedVersion(UInt8)
        case unknownKind(UInt8)
        case malformed(String)

        public var description: String {
            switch self {
            case .unsupportedVersion(let version): "cluster command version \(version) is not supported (this agent writes \(CommandCodec.version)); upgrade this agent"
            case .unknownKind(let kind): "unknown cluster command kind \(kind); upgrade this agent"
            case .malformed(let why): "malformed cluster command: \(why)"
            }
        }
    }

    public static func encode(_ command: ClusterState.Command) -> [UInt8] {
        var writer = BinaryWriter()
        writer.write(version)
        switch command {
        case .bootstrap(let identifier, let primary, let time, let timeline):
            writer.write(UInt8(1))
            writer.write(identifier)
            writer.writeBytes(Array(primary.utf8))
            writer.write(time)
            // Appended later: a reader of the first layout ignores it.
            writer.write(timeline)
        case .promote(let node, let epoch, let timeline, let position, let reason, let time):
            writer.write(UInt8(2))
            writer.writeBytes(Array(node.utf8))
            writer.write(epoch)
            writer.write(timeline)
            writer.write(position)
            writer.writeBytes(Array(reason.utf8))
            writer.write(time)
        case .recordPrimaryPosition(let epoch, let position):
            writer.write(UInt8(3))
            writer.write(epoch)
            writer.write(position)
        case .planPrimary(let node, let reason, let epoch, let force):
            writer.write(UInt8(4))
            writer.writeBytes(Array((node ?? "").utf8))
            writer.writeBytes(Array(reason.utf8))
            writer.write(epoch)
            writer.write(UInt8(force ? 1 : 0))
        }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> ClusterState.Command {
        var reader = BinaryReader(bytes)
        do {
            let version = try reader.readUInt8()
            guard version >= 1 else { throw DecodingError.unsupportedVersion(version) }
            switch try reader.readUInt8() {
            case 1:
                let identifier = try reader.readUInt64(), primary = try reader.readShortText(), time = try reader.readUInt64()
                // Entries written before the timeline was recorded: it was 1.
                let timeline = (try? reader.readUInt32()) ?? 1
                return .bootstrap(systemIdentifier: identifier, primary: primary, unixMilliseconds: time, timeline: timeline)
            case 2:
                return .promote(node: try reader.readShortText(), epoch: try reader.readUInt64(), timeline: try reader.readUInt32(),
                                walPosition: try reader.readUInt64(), reason: try reader.readShortText(), unixMilliseconds: try reader.readUInt64())
            case 3:
                return .recordPrimaryPosition(epoch: try reader.readUInt64(), walPosition: try reader.readUInt64())
            case 4:
                let node = try reader.readShortText()
                return .planPrimary(node: node.isEmpty ? nil : node, reason: try reader.readShortText(), epoch: try reader.readUInt64(),
                                    force: try reader.readUInt8() == 1)
            case let kind:
                throw DecodingError.unknownKind(kind)
            }
        } catch let error as DecodingError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
    }
}
