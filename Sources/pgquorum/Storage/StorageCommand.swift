import ArgumentParser
import RaftCore
import RaftStorage

struct StorageCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Inspect a node's durable Raft state, or replace a corrupt one safely.",
        subcommands: [VerifyStorage.self, WipeStorage.self]
    )
}

struct VerifyStorage: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every checksum of a node's Raft log and snapshots, changing nothing.",
        discussion: """
            Reads the write-ahead log segments and the newest snapshot under --data-dir, as the agent \
            does at start, and reports what it would recover. Exits 0 when the state is usable (a \
            torn tail, an unsynced partial last write, is reported and would be cut off at start), \
            1 with a one-line reason when it is corrupt. Safe to run while the agent is stopped; \
            run against a live agent it may report the tail being written as torn.
            """
    )

    @Option(name: .customLong("data-dir"), help: "The node's Raft storage directory (the one holding wal/ and snapshots/).")
    var dataDirectory: String

    func run() throws {
        let storage: RaftStorage
        do {
            storage = try RaftStorage.inspect(directory: dataDirectory)
        } catch {
            throw CommandFailure("\(error)")
        }
        guard let state = storage.recovered else {
            throw CommandFailure("no Raft state in \(dataDirectory) (wal/ and snapshots/ are empty or missing)")
        }
        print(StorageReport(state: state, segments: storage.segmentSummary.count, tornTail: storage.tornTail,
                            directory: dataDirectory).text)
    }
}

/// The human-readable summary `pgquorum storage verify` prints.
struct StorageReport {
    let state: DurableState
    let segments: Int
    let tornTail: (file: String, offset: Int, bytes: Int)?
    let directory: String

    var text: String {
        let meta = state.snapshot.metadata
        var lines = ["Raft storage in \(directory): OK"]
        lines.append("  snapshot:   index \(meta.index), term \(meta.term), \(meta.configuration), \(state.snapshot.data.count) bytes of data")
        if let first = state.entries.first, let last = state.entries.last {
            lines.append("  log:        entries \(first.index)…\(last.index) (terms \(first.term)…\(last.term)) in \(segments) segment(s)")
        } else {
            lines.append("  log:        no entries after the snapshot, \(segments) segment(s)")
        }
        let hard = state.hardState
        lines.append("  hard state: term \(hard.term), vote \(hard.vote.map(\.description) ?? "none"), commit \(hard.commit)")
        if let torn = tornTail {
            lines.append("  torn tail:  \(torn.bytes) bytes at offset \(torn.offset) of \(torn.file): an unsynced partial write, cut off when the agent starts")
        } else {
            lines.append("  torn tail:  none")
        }
        return lines.joined(separator: "\n")
    }
}
