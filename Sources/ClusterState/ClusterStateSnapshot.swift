import RaftCodec

/// The bytes of a `ClusterState` inside a Raft snapshot (log compaction): a version byte, then
/// every field. An empty snapshot is the state before any command (a new cluster, or storage
/// written before snapshots carried the state). A newer agent may append fields (readers ignore
/// trailing bytes); an unknown version is refused with a clear error rather than guessed at,
/// because a node that restored a wrong state would take wrong decisions about its PostgreSQL.
public enum ClusterStateSnapshot {
    public static let version: UInt8 = 1

    public enum DecodingError: Error, Sendable, Equatable, CustomStringConvertible {
        case unsupportedVersion(UInt8)
        case malformed(String)

        public var description: String {
            switch self {
            case .unsupportedVersion(let version):
                "cluster state snapshot version \(version) is not supported (this agent reads \(ClusterStateSnapshot.version)); upgrade this agent"
            case .malformed(let why): "malformed cluster state snapshot: \(why)"
            }
        }
    }

    public static func encode(_ state: ClusterState) -> [UInt8] {
        var writer = BinaryWriter(capacity: 64 + 64 * state.history.count)
        writer.write(version)
        writer.write(UInt8(state.systemIdentifier == nil ? 0 : 1))
        writer.write(state.systemIdentifier ?? 0)
        writer.writeBytes(Array((state.primary ?? "").utf8))
        writer.write(state.epoch)
        writer.write(state.primaryTerm)
        writer.write(state.lastPrimaryPosition)
        writer.write(UInt32(state.history.count))
        for entry in state.history {
            writer.write(entry.epoch)
            writer.writeBytes(Array(entry.primary.utf8))
            writer.write(entry.timeline)
            writer.write(entry.walPosition)
            writer.writeBytes(Array(entry.reason.utf8))
            writer.write(entry.unixMilliseconds)
        }
        if let plan = state.plannedPrimary {
            writer.write(UInt8(1))
            writer.writeBytes(Array(plan.node.utf8))
            writer.writeBytes(Array(plan.reason.utf8))
            writer.write(plan.epoch)
            writer.write(UInt8(plan.force ? 1 : 0))
        } else {
            writer.write(UInt8(0))
        }
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(DecodingError) -> ClusterState {
        guard !bytes.isEmpty else { return ClusterState() }
        var reader = BinaryReader(bytes)
        do {
            let version = try reader.readUInt8()
            guard version == 1 else { throw DecodingError.unsupportedVersion(version) }
            let hasIdentifier = try reader.readUInt8() == 1
            let identifier = try reader.readUInt64()
            let primary = try reader.readShortText()
            let epoch = try reader.readUInt64(), primaryTerm = try reader.readUInt64(), position = try reader.readUInt64()
            let count = Int(try reader.readUInt32())
            // Each entry takes at least 36 bytes: a damaged count must not reserve gigabytes.
            guard count <= reader.remaining / 36 else { throw DecodingError.malformed("\(count) history entries in \(reader.remaining) bytes") }
            var history: [ClusterState.HistoryEntry] = []
            history.reserveCapacity(count)
            for _ in 0..<count {
                history.append(ClusterState.HistoryEntry(
                    epoch: try reader.readUInt64(), primary: try reader.readShortText(), timeline: try reader.readUInt32(),
                    walPosition: try reader.readUInt64(), reason: try reader.readShortText(), unixMilliseconds: try reader.readUInt64()))
            }
            var plan: ClusterState.PlannedPrimary?
            if try reader.readUInt8() == 1 {
                plan = ClusterState.PlannedPrimary(node: try reader.readShortText(), reason: try reader.readShortText(), epoch: try reader.readUInt64(),
                                                   force: try reader.readUInt8() == 1)
            }
            return ClusterState(systemIdentifier: hasIdentifier ? identifier : nil, primary: primary.isEmpty ? nil : primary,
                                epoch: epoch, primaryTerm: primaryTerm, lastPrimaryPosition: position, history: history,
                                plannedPrimary: plan)
        } catch let error as DecodingError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
    }
}
