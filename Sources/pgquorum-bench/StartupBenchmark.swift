import ArgumentParser
import ClusterState
import Foundation
import RaftCore
import RaftStorage

/// How long an agent's start-up replay takes after a long life: a one-voter Raft node on real
/// storage applies `entries` cluster commands (the primary's WAL position records that dominate
/// a real log), compacting as the agent does; then the directory is opened again the way the
/// agent starts (storage recovery, node restore, cluster state from the snapshot, replay of the
/// entries after it). The same without compaction, for comparison.
struct StartupBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "startup",
        abstract: "Start-up time of the Raft state after many applied entries, with and without compaction."
    )

    @Option(help: "Directory to benchmark in (a temporary directory under it is created and removed).")
    var directory: String = NSTemporaryDirectory()

    @Option(help: "Applied entries before the restart.")
    var entries = 1_000_000

    @Option(help: "raft.snapshot_entries.")
    var snapshotEntries = 10_000

    @Option(help: "raft.keep_entries.")
    var keepEntries = 5_000

    @Option(help: "WAL segment size in MiB (the agent's is RaftStorage.agentSegmentBytes).")
    var segmentMib = RaftStorage.agentSegmentBytes >> 20

    func run() throws {
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let root = base + "/pgquorum-bench-startup-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        print("pgquorum-bench startup: \(entries) applied entries, snapshot every \(snapshotEntries), keep \(keepEntries), \(segmentMib) MiB segments; in \(root)")
        for compacting in [true, false] {
            let path = root + (compacting ? "/compacted" : "/whole")
            let written = try fill(path, compacting: compacting)
            let clock = ContinuousClock()
            let started = clock.now
            let restored = try restart(path)
            let elapsed = clock.now - started
            print(String(format: "%@: %.1f MB on disk, %d entries after the snapshot at %llu; start-up %.0f ms (fill took %.1f s); state epoch %llu, position %llu",
                         compacting ? "compacted" : "never compacted", Double(bytes(path)) / 1_048_576, restored.entries, restored.snapshotIndex,
                         elapsed.seconds * 1_000, written.seconds, restored.state.epoch, restored.state.lastPrimaryPosition))
        }
    }

    /// Applies the entries through a real node and storage; returns how long it took.
    private func fill(_ path: String, compacting: Bool) throws -> Duration {
        let clock = ContinuousClock()
        let started = clock.now
        let storage = try RaftStorage.open(directory: path, segmentBytes: segmentMib << 20)
        try storage.initialize(.bootstrap(Configuration(voters: [1])))
        guard let durable = storage.recovered else { throw CommandFailure("storage recovered nothing") }
        var options = RaftOptions()
        options.heartbeatTicks = 1
        options.electionTicks = 10
        options.leaseTicks = 8
        var node = try RaftNode(id: 1, options: options, restoring: durable)
        var state = ClusterState()
        var schedule = CompactionSchedule(interval: UInt64(snapshotEntries), keep: UInt64(keepEntries), snapshotIndex: 0)
        func drain() throws {
            while node.hasReady {
                let ready = node.ready()
                if ready.needsPersist { try storage.persist(ready) }
                for entry in ready.committedEntries {
                    if case .application(let bytes) = entry.payload, let command = try? CommandCodec.decode(bytes) {
                        state.apply(command, term: entry.term)
                    }
                    if compacting { schedule.applied(index: entry.index, state: state) }
                }
                node.advance(ready)
                if compacting, let checkpoint = schedule.due(appliedIndex: node.appliedIndex) {
                    schedule.compacted(through: checkpoint.index)
                    if let snapshot = node.compact(through: checkpoint.index, snapshotData: checkpoint.data) { try storage.saveSnapshot(snapshot) }
                }
            }
        }
        while node.role != .leader {
            node.tick()
            try drain()
        }
        _ = node.propose(CommandCodec.encode(.bootstrap(systemIdentifier: 7, primary: "primary", unixMilliseconds: 0, timeline: 2)))
        try drain()
        var position: UInt64 = 0x3000_0000
        var proposed = 1
        while proposed < entries {
            // A thousand per Ready, as a busy leader batches them.
            for _ in 0..<min(1_000, entries - proposed) {
                position += 8_192
                _ = node.propose(CommandCodec.encode(.recordPrimaryPosition(epoch: 1, walPosition: position)))
                proposed += 1
            }
            try drain()
        }
        return clock.now - started
    }

    /// What an agent does at start: open the storage, restore the node, decode the state from
    /// the snapshot, apply the committed entries after it.
    private func restart(_ path: String) throws -> (state: ClusterState, entries: Int, snapshotIndex: UInt64) {
        let storage = try RaftStorage.open(directory: path, segmentBytes: segmentMib << 20)
        guard let durable = storage.recovered else { throw CommandFailure("storage recovered nothing") }
        var node = try RaftNode(id: 1, options: RaftOptions(), restoring: durable)
        var state = try ClusterStateSnapshot.decode(durable.snapshot.data)
        while node.hasReady {
            let ready = node.ready()
            for entry in ready.committedEntries {
                if case .application(let bytes) = entry.payload, let command = try? CommandCodec.decode(bytes) {
                    state.apply(command, term: entry.term)
                }
            }
            node.advance(ready)
        }
        return (state, durable.entries.count, durable.snapshot.metadata.index)
    }

    private func bytes(_ path: String) -> Int {
        guard let enumerator = FileManager.default.enumerator(atPath: path) else { return 0 }
        var total = 0
        while let file = enumerator.nextObject() as? String {
            total += ((try? FileManager.default.attributesOfItem(atPath: path + "/" + file)[.size]) as? Int) ?? 0
        }
        return total
    }
}
