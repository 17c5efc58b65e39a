import RaftCodec

/// One agent's PostgreSQL state, sent to the leader on every heartbeat over the peer link
/// (`report` frames) and kept by the leader to choose a primary. Pure data.
public struct MemberReport: Sendable, Equatable {
    public enum Role: UInt8, Sendable, Equatable {
        /// Not running (or not answering).
        case stopped = 0
        case primary = 1
        case replica = 2
        /// A witness: no PostgreSQL.
        case none = 3
    }

    public var role: Role
    /// Answers its health check (and is not failing repeatedly).
    public var healthy: Bool
    /// Failed health checks in a row.
    public var failedChecks: UInt32
    public var systemIdentifier: UInt64
    public var timeline: UInt32
    /// Primary: the current write position. Replica: the last position received. Stopped (or
    /// in crash recovery): the end of the WAL on disk, 0 when unknown.
    public var receivedPosition: UInt64
    /// Replica: the last position replayed.
    public var replayedPosition: UInt64
    /// Replica: the WAL receiver is connected and streaming.
    public var streaming: Bool
    /// Replica: milliseconds since the last replayed transaction's commit on the primary.
    public var lagMilliseconds: UInt64
    /// The epoch this node last applied (so the leader sees who is behind).
    public var epoch: UInt64
    /// The last problem, one line ("" when none). Never holds a password.
    public var lastError: String
    /// Replica: the primary's WAL end as its walsender last reported it (0 when unknown).
    public var upstreamPosition: UInt64 = 0

    public init(role: Role, healthy: Bool, failedChecks: UInt32 = 0, systemIdentifier: UInt64 = 0, timeline: UInt32 = 0,
                receivedPosition: UInt64 = 0, replayedPosition: UInt64 = 0, streaming: Bool = false,
                lagMilliseconds: UInt64 = 0, epoch: UInt64 = 0, lastError: String = "") {
        self.role = role
        self.healthy = healthy
        self.failedChecks = failedChecks
        self.systemIdentifier = systemIdentifier
        self.timeline = timeline
        self.receivedPosition = receivedPosition
        self.replayedPosition = replayedPosition
        self.streaming = streaming
        self.lagMilliseconds = lagMilliseconds
        self.epoch = epoch
        self.lastError = lastError
    }

    public static let witness = MemberReport(role: .none, healthy: false)
}

/// A WAL position as PostgreSQL prints it (`16/B374D848`).
public func lsnText(_ position: UInt64) -> String {
    String(position >> 32, radix: 16, uppercase: true) + "/" + String(position & 0xFFFF_FFFF, radix: 16, uppercase: true)
}

/// The bytes of a `MemberReport`: a version byte, then the fields. Newer agents may append
/// fields (readers ignore trailing bytes).
public enum MemberReportCodec {
    public static let version: UInt8 = 1

    public static func encode(_ report: MemberReport) -> [UInt8] {
        var writer = BinaryWriter()
        writer.write(version)
        writer.write(report.role.rawValue)
        writer.write(UInt8(report.healthy ? 1 : 0))
        writer.write(report.failedChecks)
        writer.write(report.systemIdentifier)
        writer.write(report.timeline)
        writer.write(report.receivedPosition)
        writer.write(report.replayedPosition)
        writer.write(UInt8(report.streaming ? 1 : 0))
        writer.write(report.lagMilliseconds)
        writer.write(report.epoch)
        writer.writeBytes(Array(report.lastError.utf8.prefix(1_024)))
        writer.write(report.upstreamPosition)
        return writer.bytes
    }

    public static func decode(_ bytes: [UInt8]) throws(CommandCodec.DecodingError) -> MemberReport {
        var reader = BinaryReader(bytes)
        do {
            let version = try reader.readUInt8()
            guard version >= 1 else { throw CommandCodec.DecodingError.unsupportedVersion(version) }
            let rawRole = try reader.readUInt8()
            guard let role = MemberReport.Role(rawValue: rawRole) else { throw CommandCodec.DecodingError.malformed("unknown role \(rawRole)") }
            let healthy = try reader.readUInt8() == 1
            let failed = try reader.readUInt32()
            let identifier = try reader.readUInt64()
            let timeline = try reader.readUInt32()
            let received = try reader.readUInt64()
            let replayed = try reader.readUInt64()
            let streaming = try reader.readUInt8() == 1
            let lag = try reader.readUInt64()
            let epoch = try reader.readUInt64()
            let error = String(decoding: try reader.readBytes(limit: 4_096), as: UTF8.self)
            var report = MemberReport(role: role, healthy: healthy, failedChecks: failed, systemIdentifier: identifier, timeline: timeline,
                                      receivedPosition: received, replayedPosition: replayed, streaming: streaming,
                                      lagMilliseconds: lag, epoch: epoch, lastError: error)
            report.upstreamPosition = (try? reader.readUInt64()) ?? 0
            return report
        } catch let error as CommandCodec.DecodingError {
            throw error
        } catch {
            throw .malformed("\(error)")
        }
    }
}
