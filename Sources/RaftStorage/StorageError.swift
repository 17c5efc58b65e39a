/// Why storage refused to start or to write. Each description is one line that names the file
/// and says what to do.
public enum StorageError: Error, Equatable, Sendable, CustomStringConvertible {
    /// A checksum or structure check failed somewhere a torn write cannot explain.
    case corrupt(file: String, offset: Int, reason: String)
    /// A system call failed.
    case io(operation: String, path: String, errno: Int32)

    public var description: String {
        switch self {
        case .corrupt(let file, let offset, let reason):
            "corrupt Raft state in \(file) at offset \(offset): \(reason); this node's Raft state cannot be trusted — "
                + "wipe it and let the node rejoin from its peers (docs/storage.md, \"Recovering a node\")"
        case .io(let operation, let path, let errno):
            "\(operation) \(path) failed: \(SystemError.message(errno))"
        }
    }
}
