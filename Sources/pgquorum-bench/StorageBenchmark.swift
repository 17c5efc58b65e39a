import ArgumentParser
import Foundation
import RaftCore
import RaftStorage

/// Append+sync latency and throughput of `RaftStorage`, next to this disk's raw `fdatasync` rate
/// measured in the same run, in the same directory.
struct StorageBenchmark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "storage",
        abstract: "Append+sync latency and throughput of the Raft log, next to this disk's raw fdatasync rate."
    )

    @Option(help: "Directory to benchmark in (a temporary directory under it is created and removed). Use a directory on the disk the agent will use.")
    var directory: String = NSTemporaryDirectory()

    @Option(help: "Syncs per latency run.")
    var syncs = 2_000

    @Option(help: "Entries written in each batched run.")
    var batchedEntries = 200_000

    @Option(help: "Payload bytes per entry.")
    var payloadBytes = 128

    func run() throws {
        let base = directory.hasSuffix("/") ? String(directory.dropLast()) : directory
        let root = base + "/pgquorum-bench-storage-" + UUID().uuidString
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: root) }
        print("pgquorum-bench storage: \(root), payload \(payloadBytes) B")

        let raw = try rawFdatasync(path: root + "/raw", count: syncs)
        print(row("raw write+fdatasync", raw, unit: "syncs/s"))

        let payload = [UInt8](repeating: 0x5A, count: payloadBytes)
        let storage = try RaftStorage.open(directory: root + "/raft")
        try storage.initialize(.bootstrap(Configuration(voters: [1, 2, 3])))
        var next: LogIndex = 1
        func batch(_ count: Int) -> Ready {
            let entries = (0..<count).map { offset in
                Entry(term: 1, index: next + LogIndex(offset), payload: .application(payload))
            }
            next += LogIndex(count)
            return Ready(hardState: HardState(term: 1, vote: 1, commit: next - 1), entries: entries)
        }

        let single = try measure(count: syncs) { try storage.persist(batch(1)) }
        print(row("append+sync, 1 entry", single, unit: "appends/s"))
        print("  1-entry p50 / raw p50          \(format(single.median / raw.median))× (goal: ≤ 1.5×)")

        for size in [16, 256, 4_096] {
            let rounds = max(1, batchedEntries / size)
            let result = try measure(count: rounds) { try storage.persist(batch(size)) }
            let entriesPerSecond = Double(rounds * size) / result.total
            print(row("append+sync, \(size) per sync", result, unit: "syncs/s")
                  + "  → \(Int(entriesPerSecond.rounded())) entries/s")
        }
    }

    struct Measurement {
        var total: Double
        var latencies: [Double]
        var median: Double { latencies[latencies.count / 2] }
        var p99: Double { latencies[min(latencies.count - 1, latencies.count * 99 / 100)] }
        var rate: Double { Double(latencies.count) / total }
    }

    private func measure(count: Int, _ body: () throws -> Void) throws -> Measurement {
        let clock = ContinuousClock()
        var latencies: [Double] = []
        latencies.reserveCapacity(count)
        let start = clock.now
        for _ in 0..<count {
            let before = clock.now
            try body()
            latencies.append((clock.now - before).seconds)
        }
        let total = (clock.now - start).seconds
        latencies.sort()
        return Measurement(total: total, latencies: latencies)
    }

    /// The disk's own floor: append 64 bytes and fdatasync, `count` times.
    private func rawFdatasync(path: String, count: Int) throws -> Measurement {
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0o600)
        guard fd >= 0 else { throw ValidationError("cannot open \(path): errno \(errno)") }
        defer { close(fd) }
        let bytes = [UInt8](repeating: 1, count: 64)
        return try measure(count: count) {
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count, fdatasync(fd) == 0 else { throw ValidationError("write/fdatasync failed: errno \(errno)") }
        }
    }

    private func row(_ name: String, _ m: Measurement, unit: String) -> String {
        let label = name + String(repeating: " ", count: max(1, 31 - name.count))
        return "  \(label)\(Int(m.rate.rounded())) \(unit)  p50 \(microseconds(m.median)) µs  p99 \(microseconds(m.p99)) µs"
    }

    private func format(_ value: Double) -> String { String(Double(Int(value * 100)) / 100) }
}
