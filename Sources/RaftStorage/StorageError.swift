/// Why storage refused to start or to write. Each description is one line that names the file
/// and says what to do.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A checksum or structure check failed somewhere a torn write cannot explain.
    case corrupt(file: String, offset: Int, reason: String)
    /// A system call failed.
    case io(operation: String, path: String, errno: Int32)
    /// A file written by a newer pgquorum, in a format this one cannot read.
    case unsupportedVersion(file: String, version: UInt32, supported: UInt32)
    /// A record too large to write (and so to ever read back).
    case recordTooLarge(bytes: Int, limit: Int)

    public var description: String {
        switch self {
        case .corrupt(let file, let offset, let reason):
            "corrupt Raft state in \(file) at offset \(offset): \(reason); this node's Raft state cannot be trusted — "
                + "wipe it and let the node rejoin from its peers (docs/storage.md, \"Recovering a node\")"
        case .io(let operation, let path, let errno):
            "\(operation) \(path) failed: \(SystemError.message(errno))"
        case .unsupportedVersion(let file, let version, let supported):
            "\(file) has format version \(version), which this pgquorum cannot read (it reads version \(supported)) — "
                + "run the pgquorum version that wrote it (do not wipe the state: it is not damaged)"
        case .recordTooLarge(let bytes, let limit):
            "refusing to write a Raft log record of \(bytes) bytes (the limit is \(limit)): keep proposals small"
        }
    }
}
