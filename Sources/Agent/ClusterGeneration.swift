import Foundation
import Logging

/// `<data_dir>/cluster-generation`: the number of forced recoveries this node knows of (see
/// `MembershipNotice`). Absent means 0. Written to a temporary file, synced, renamed over the
/// old one and the directory synced, so a crash leaves the old number or the new, never a torn
/// one.
struct ClusterGeneration {
    let path: String
    let dataDirectory: String

    init(dataDirectory: String) {
        self.dataDirectory = dataDirectory
        path = dataDirectory + "/cluster-generation"
    }

    private static let movedPrefix = "raft.before-generation-"

    /// Where a rejoin moves the Raft directory `raft` aside (kept, never deleted).
    static func movedRaftDirectory(_ raft: String, generation: UInt64) -> String {
        (raft as NSString).deletingLastPathComponent + "/" + movedPrefix + "\(generation)-\(Int(Date().timeIntervalSince1970))"
    }

    /// The generation at start: the stored one, or — after a crash in the middle of a rejoin,
    /// `raft` moved aside but the new number not yet stored — the one in the moved directory's
    /// name, stored now.
    func recover(logger: Logger) throws -> UInt64 {
        let stored = try load()
        guard !FileManager.default.fileExists(atPath: dataDirectory + "/raft"),
              let names = try? FileManager.default.contentsOfDirectory(atPath: dataDirectory) else { return stored }
        let moved = names.compactMap { name -> UInt64? in
            guard name.hasPrefix(Self.movedPrefix) else { return nil }
            return UInt64(name.dropFirst(Self.movedPrefix.count).prefix { $0 != "-" })
        }
        guard let highest = moved.max(), highest > stored else { return stored }
        logger.warning("finishing an interrupted rejoin: the Raft state was moved aside for a newer cluster generation", metadata: ["generation": "\(highest)"])
        try store(highest)
        return highest
    }

    func load() throws(AgentStartError) -> UInt64 {
        guard FileManager.default.fileExists(atPath: path) else { return 0 }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw AgentStartError("cannot read \(path); check its permissions")
        }
        let text = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard let value = UInt64(text) else {
            throw AgentStartError("\(path) is damaged (it should hold one number, the cluster generation); restore it from a peer's copy (the highest of them) or see docs/operations.md, \"Disaster recovery\"")
        }
        return value
    }

    func store(_ generation: UInt64) throws {
        let temporary = path + ".tmp"
        let bytes = Array("\(generation)\n".utf8)
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else { throw failure("open \(temporary)") }
        let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
        guard written == bytes.count, fsync(descriptor) == 0 else {
            let error = failure("write \(temporary)")
            close(descriptor)
            throw error
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else { throw failure("rename \(temporary)") }
        let directory = open((path as NSString).deletingLastPathComponent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard directory >= 0 else { throw failure("open the directory of \(path)") }
        defer { close(directory) }
        guard fsync(directory) == 0 else { throw failure("sync the directory of \(path)") }
    }

    private func failure(_ what: String) -> AgentStartError {
        AgentStartError("cannot \(what): \(String(cString: strerror(errno)))")
    }
}
